"""The UCI handwritten digits (8x8, 1,797 samples, 10 classes), shipped with the package.

The data live in ``nn/datasets/digits.npz`` (see ``nn/datasets/README.txt``
for source, licence - CC BY 4.0 - and checksums) and are found with
:mod:`importlib.resources`, so they load from an installed package too.
Nothing is downloaded.
"""

from __future__ import annotations

import functools
import io
from importlib import resources

import numpy as np
from numpy.typing import DTypeLike

from ._validation import check_dtype, check_float_dtype, check_int
from .preprocessing import Standardizer, train_test_split

__all__ = ["load_digits", "digits_split", "DIGITS_N_SAMPLES", "DIGITS_CLASSES"]

DIGITS_N_SAMPLES = 1797
DIGITS_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
_RESOURCE = ("datasets", "digits.npz")


@functools.lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    """Read ``images`` (uint8, (1797, 8, 8)) and ``labels`` (uint8) once; read-only."""
    ref = resources.files("nn")
    for part in _RESOURCE:             # (one part per call: Python 3.10's zip reader)
        ref = ref.joinpath(part)
    try:
        payload = ref.read_bytes()
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"the bundled digits data file nn/{'/'.join(_RESOURCE)} is missing "
            f"(looked in {ref}); reinstall tinygraph, or rebuild it with "
            "`python -m nn.data._build_digits` (see nn/datasets/README.txt)"
        ) from exc
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        images = npz["images"]
        labels = npz["labels"]
    expected = ((DIGITS_N_SAMPLES, 8, 8), (DIGITS_N_SAMPLES,))
    if (images.shape, labels.shape) != expected or images.dtype != np.uint8 \
            or labels.dtype != np.uint8:
        raise ValueError(
            f"{ref}: expected uint8 images {expected[0]} and uint8 labels {expected[1]}, "
            f"found {images.dtype} {images.shape} and {labels.dtype} {labels.shape}"
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(
    flatten: bool = True,
    dtype: DTypeLike = np.float64,
    scale: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load all 1,797 digits images and labels.

    Args:
        flatten: Return ``X`` as ``(1797, 64)`` rows (row-major pixels); if
            False, as ``(1797, 8, 8)`` images.
        dtype: dtype of ``X``. Must be floating when ``scale`` is True; with
            ``scale=False`` any numeric dtype works (e.g. ``np.uint8``).
        scale: Divide pixel values (0..16) by 16 so ``X`` is in ``[0, 1]``.

    Returns:
        ``(X, y)``: ``X`` as described, ``y`` of shape ``(1797,)``, ``int64``
        labels 0..9. Fresh, writable arrays on each call.
    """
    dtype = (check_float_dtype("load_digits: dtype", dtype) if scale
             else check_dtype("load_digits: dtype", dtype))
    images, labels = _load_raw()
    X = images.reshape(DIGITS_N_SAMPLES, 64) if flatten else images
    X = X.astype(dtype)  # always a copy
    if scale:
        X /= 16.0
    return X, labels.astype(np.int64)


def digits_split(
    seed: int = 0,
    test_size: float = 0.2,
    dtype: DTypeLike = np.float64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed, standardised train/test split of the digits used by examples and tests.

    Steps: :func:`load_digits` (flattened, scaled to [0, 1]); a stratified
    :func:`~nn.data.train_test_split` with ``seed`` and ``test_size``
    (the defaults give 1437 train / 360 test rows, 35-37 of each digit in
    the test set); then a :class:`~nn.data.Standardizer`
    fitted on the training part only and applied to both (always-zero pixels
    become 0, not NaN). The same arguments always give the same arrays.

    Args:
        seed: Non-negative int selecting the split (0 is the reference
            split); ``None`` and Generators are rejected so the split stays
            fixed.
        test_size: Fraction held out for testing, ``0 < test_size < 1``.
        dtype: Floating-point dtype of the returned ``X`` arrays.

    Returns:
        ``(X_train, X_test, y_train, y_test)`` with ``X_*`` of shape
        ``(n, 64)`` and ``y_*`` ``int64``.
    """
    seed = check_int("digits_split: seed", seed, 0)
    dtype = check_float_dtype("digits_split: dtype", dtype)
    X, y = load_digits(flatten=True, dtype=np.float64, scale=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, seed=seed, stratify=True
    )
    scaler = Standardizer().fit(X_train)
    return (
        scaler.transform(X_train, dtype=dtype),
        scaler.transform(X_test, dtype=dtype),
        y_train,
        y_test,
    )
