"""MNIST / Fashion-MNIST from local IDX files (nothing is downloaded).

The IDX format (used by MNIST and Fashion-MNIST) is::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16,
                0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d (images: 3, labels: 1)
    then        d sizes, each a big-endian uint32
    then        the elements, big-endian, C order

so an image file starts ``00 00 08 03`` and a label file ``00 00 08 01``.
Files may be gzip-compressed; that is detected from the gzip magic bytes
``1f 8b``, not from the file name.

Fashion-MNIST on Debian/Ubuntu: ``sudo apt-get install dataset-fashion-mnist``
puts the four files in ``/usr/share/datasets/fashion-mnist``, which
:func:`load_mnist` uses by default.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from ._validation import check_dtype, check_float_dtype

__all__ = [
    "load_idx",
    "save_idx",
    "load_mnist",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "MNIST_FILES",
]

#: Class names of Fashion-MNIST, indexed by label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Class names of MNIST, indexed by label.
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: The four file names (each may also carry a ``.gz`` suffix).
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[np.dtype, int] = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}

_PROJECT_PAGES = {
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist",
    "mnist": "http://yann.lecun.com/exdb/mnist/",
}


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a numpy array.

    Args:
        path: The file. Compression is detected from its first two bytes.

    Returns:
        A new array with the file's shape and element type in native byte
        order (``uint8`` for MNIST images and labels).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid IDX: corrupt/truncated gzip stream,
            bad magic number, unknown type code, zero dimensions, or a
            header/payload whose length does not match the dimensions. The
            message names the file, what was expected and what was found.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    where = str(path)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(
                f"{where}: expected a complete gzip stream (the file starts with the "
                f"gzip magic bytes 1f 8b), but decompression failed: {exc}"
            ) from exc
        where = f"{path} (after gunzip)"

    if len(data) < 4:
        raise ValueError(
            f"{where}: expected a 4-byte IDX magic number, found only {len(data)} byte(s)"
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{where}: expected an IDX magic number starting with 00 00 (e.g. "
            f"00 00 08 03 for images, 00 00 08 01 for labels), found "
            f"{data[:4].hex(' ')}"
        )
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_TYPES)
        raise ValueError(
            f"{where}: expected an IDX element type code ({known}; 0x08 = uint8), "
            f"found 0x{code:02X} in magic number {data[:4].hex(' ')}"
        )
    if ndim == 0:
        raise ValueError(
            f"{where}: expected at least 1 dimension in the IDX magic number, found 0"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"{where}: expected a {header_len}-byte header for {ndim} dimension(s), "
            f"found only {len(data)} byte(s) (truncated file?)"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize     # Python ints: no overflow on a bad header
    found = len(data) - header_len
    if found != expected:
        what = "truncated file?" if found < expected else "trailing bytes"
        raise ValueError(
            f"{where}: expected {expected} bytes of {dtype.newbyteorder('=')} data "
            f"for shape {tuple(shape)}, found {found} ({what})"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # copy: writable, native order


def save_idx(
    path: str | os.PathLike[str],
    array: np.ndarray,
    compress: bool | None = None,
) -> Path:
    """Write ``array`` as an IDX file (the inverse of :func:`load_idx`).

    Handy for making small MNIST-format test files or subsets.

    Args:
        path: Output file.
        array: Array of dtype uint8, int8, int16, int32, float32 or float64
            with at least one dimension, each < 2**32.
        compress: gzip the file; ``None`` means "if ``path`` ends in ``.gz``".

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    try:
        array = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save_idx: array is not an array: {str(exc).split('. ')[0]}; "
                         f"expected rows of equal length") from None
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise TypeError(
            f"save_idx: array dtype must be one of uint8, int8, int16, int32, float32, "
            f"float64 for IDX, got {array.dtype}"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"save_idx: array must have 1..255 dimensions for IDX, got shape "
                         f"{array.shape}")
    if max(array.shape) >= 2**32:
        raise ValueError(f"save_idx: every IDX dimension must be < 2**32, got shape "
                         f"{array.shape}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


def _how_to_get(kind: str) -> str:
    """The 'how to obtain the files' part of the missing-data messages."""
    page = _PROJECT_PAGES[kind]
    name = "Fashion-MNIST" if kind == "fashion-mnist" else "MNIST"
    apt = (
        "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs them "
        f"to {FASHION_MNIST_DIR})"
    )
    if kind == "fashion-mnist":
        return (
            f"To get them: {apt}, or download the four files from the {name} "
            f"project page ({page}) into a folder and point to it (--data DIR on the "
            "command line, directory=DIR in Python)."
        )
    return (
        f"To get them: download the four files from the {name} project page "
        f"({page}) into a folder and point to it (--data DIR on the command line, "
        f"directory=DIR in Python). "
        f"For Fashion-MNIST instead: {apt}."
    )


def _find(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists (raw first)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist(
    directory: str | os.PathLike[str] | None = None,
    kind: str = "fashion-mnist",
    flatten: bool = True,
    dtype: DTypeLike = np.float64,
    scale: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST or Fashion-MNIST from the four standard IDX files.

    Looks in ``directory`` for ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each optionally with ``.gz``. With
    ``directory=None``: Fashion-MNIST is read from
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``
    package); MNIST has no default location and needs ``directory``.

    Args:
        directory: Folder holding the files, or ``None`` (see above).
        kind: ``"fashion-mnist"`` or ``"mnist"``; only picks the default
            directory and the wording of error messages.
        flatten: ``X`` as ``(n, 784)`` rows; if False as ``(n, 28, 28)``.
        dtype: dtype of ``X``; must be floating when ``scale`` is True
            (``np.float32`` halves the memory: 60000x784 float64 is 376 MB).
        scale: Divide pixel values (0..255) by 255 so ``X`` is in ``[0, 1]``.

    Returns:
        ``(X_train, y_train, X_test, y_test)``; labels are ``int64``. For the
        standard files: 60,000 training and 10,000 test samples.

    Raises:
        FileNotFoundError: the directory or any of the four files is missing
            (or ``kind="mnist"`` without ``directory``); the message lists the
            missing files and how to get them. Also when ``directory`` is a file.
        ValueError: bad ``kind``, a malformed file, images and labels that
            do not match in count, or a label outside 0..9.
    """
    if kind not in _PROJECT_PAGES:
        raise ValueError(f"load_mnist: kind must be 'fashion-mnist' or 'mnist', got {kind!r}")
    dtype = (check_float_dtype("load_mnist: dtype", dtype) if scale
             else check_dtype("load_mnist: dtype", dtype))
    if not scale and dtype.kind == "b":
        raise ValueError("load_mnist: dtype: bool cannot hold pixel values (every nonzero "
                         "pixel would be True); use np.uint8, a wider integer type or a float "
                         "type")
    if not scale and dtype.kind in "iu" and np.iinfo(dtype).max < 255:
        raise ValueError(f"load_mnist: dtype: {dtype.name} cannot hold pixel values up to 255 "
                         f"(with scale=False); use np.uint8, a wider integer type or a float "
                         f"type")
    names = list(MNIST_FILES.values())
    if directory is None:
        if kind == "mnist":
            raise FileNotFoundError(
                "MNIST has no default location: pass --data DIR (command line) or "
                "directory=DIR (Python) "
                "pointing at a folder with " + ", ".join(f"{n}[.gz]" for n in names)
                + ". " + _how_to_get(kind)
            )
        folder = FASHION_MNIST_DIR
    else:
        folder = Path(directory)

    label = "Fashion-MNIST" if kind == "fashion-mnist" else "MNIST"
    if folder.exists() and not folder.is_dir():
        raise FileNotFoundError(f"{label} directory {folder} is a file; pass the folder that "
                                f"holds " + ", ".join(f"{n}[.gz]" for n in names))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{label} directory {folder} does not exist, so these files are missing: "
            + ", ".join(f"{n}[.gz]" for n in names) + ". " + _how_to_get(kind)
        )
    found = {key: _find(folder, name) for key, name in MNIST_FILES.items()}
    missing = [MNIST_FILES[key] for key, p in found.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"{label} files missing in {folder}: "
            + ", ".join(f"{n}[.gz]" for n in missing) + ". " + _how_to_get(kind)
        )

    def split(images_key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray]:
        images_path, labels_path = found[images_key], found[labels_key]
        assert images_path is not None and labels_path is not None
        images = load_idx(images_path)
        labels = load_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"{images_path}: expected uint8 images of shape (n, rows, cols), "
                f"found {images.dtype} array of shape {images.shape}"
            )
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{labels_path}: expected 1-D integer labels, found {labels.dtype} "
                f"array of shape {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{images_path} has {images.shape[0]} images but {labels_path} has "
                f"{labels.shape[0]} labels; expected the same count"
            )
        n_classes = len(MNIST_CLASSES)      # (both datasets have 10)
        outside = (labels < 0) | (labels >= n_classes)
        if outside.any():                   # (fit would name the label, but not the file)
            i = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"{labels_path}: label {int(labels[i])} at index {i} ({int(outside.sum())} "
                f"label(s) outside 0..{n_classes - 1} in all); expected classes 0 to "
                f"{n_classes - 1}: the file is corrupted or not a label file"
            )
        X = images.reshape(images.shape[0], -1) if flatten else images
        X = X.astype(dtype, copy=False)
        if scale:
            X /= 255.0
        return X, labels.astype(np.int64)

    X_train, y_train = split("train_images", "train_labels")
    X_test, y_test = split("test_images", "test_labels")
    if X_train.shape[1:] != X_test.shape[1:]:
        raise ValueError(
            f"{found['test_images']}: test images of shape {X_test.shape[1:]} (per image) "
            f"but the training images in {found['train_images']} are {X_train.shape[1:]}; "
            f"expected the same image size in both"
        )
    return X_train, y_train, X_test, y_test
