"""Tests for nn.data: synthetic data, preprocessing, bundled digits, IDX/MNIST loading."""

from __future__ import annotations

import gzip
import math
import hashlib
import re
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import activations
import nn
from nn.data import (
    DIGITS_CLASSES,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    MNIST_CLASSES,
    Standardizer,
    blobs,
    digits_split,
    load_digits,
    load_idx,
    load_mnist,
    one_hot,
    save_idx,
    sine,
    spiral,
    standardize,
    train_test_split,
    xor,
)
from nn.data._build_digits import content_sha256
from nn.data.synthetic import _blob_centres

DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# --------------------------------------------------------------------- xor
def test_xor_truth_table():
    X, y = xor()
    assert X.shape == (4, 2) and X.dtype == np.float64
    assert y.shape == (4,) and y.dtype == np.int64
    for row, label in zip(X, y):
        assert label == int(row[0]) ^ int(row[1])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])


def test_xor_dtype_and_bad_dtype():
    X, _ = xor(dtype=np.float32)
    assert X.dtype == np.float32
    with pytest.raises(TypeError, match="dtype.*floating.*int64"):
        xor(dtype=np.int64)


# ------------------------------------------------------------------- blobs
def test_blobs_shapes_labels_and_balance():
    X, y = blobs(n_samples=201, n_classes=3, n_features=4, seed=0)
    assert X.shape == (201, 4) and X.dtype == np.float64
    assert y.shape == (201,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [67, 67, 67])
    X1, y1 = blobs(n_samples=7, n_classes=2, n_features=1, seed=0, dtype=np.float32)
    assert X1.shape == (7, 1) and X1.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(y1), [4, 3])


def test_blobs_deterministic_with_seed():
    a = blobs(seed=123)
    b = blobs(seed=123)
    c = blobs(seed=124)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(blobs(seed=g1)[0], blobs(seed=g2)[0])


def test_blobs_shuffle_false_sorted_by_class():
    _, y = blobs(n_samples=10, n_classes=3, seed=0, shuffle=False)
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize("n_classes,n_features,spread", [(2, 2, 0.5), (5, 3, 1.5), (4, 1, 3.0)])
def test_blobs_linearly_separable(n_classes, n_features, spread):
    X, y = blobs(n_samples=500, n_classes=n_classes, n_features=n_features,
                 spread=spread, seed=1)
    centres = _blob_centres(n_classes, n_features, 4.0)
    dists = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)
    assert np.min(dists[~np.eye(n_classes, dtype=bool)]) == pytest.approx(4.0)
    # Every point is within 1.9 of its own centre, so the nearest-centre rule
    # (a linear classifier: argmax_k c_k.x - |c_k|^2/2) is exact.
    assert np.linalg.norm(X - centres[y], axis=1).max() <= 1.9 + 1e-9
    scores = X @ centres.T - 0.5 * (centres**2).sum(axis=1)
    np.testing.assert_array_equal(scores.argmax(axis=1), y)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        ({"n_samples": 0}, ValueError, r"n_samples must be an integer >= 1, got 0"),
        ({"n_samples": 2.5}, TypeError, r"n_samples must be an integer.*2\.5"),
        ({"n_classes": 1}, ValueError, r"n_classes must be an integer >= 2, got 1"),
        ({"n_samples": 2, "n_classes": 3}, ValueError, r"n_samples must be >= n_classes \(3\).*got 2"),
        ({"n_features": 0}, ValueError, r"n_features must be an integer >= 1, got 0"),
        ({"spread": 0.0}, ValueError, r"spread must be a finite number > 0.*got 0\.0"),
        ({"spread": float("nan")}, ValueError, r"spread must be .*nan"),
        ({"seed": -1}, ValueError, r"seed must be .*non-negative.*got -1"),
        ({"seed": "abc"}, TypeError, r"seed must be .*'abc'"),
        ({"n_samples": True}, TypeError, r"n_samples must be an integer.*True"),
    ],
)
def test_blobs_argument_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        blobs(**kwargs)


# ------------------------------------------------------------------ spiral
def test_spiral_shapes_and_determinism():
    X, y = spiral(n_per_class=50, n_classes=4, seed=3)
    assert X.shape == (200, 2) and y.shape == (200,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [50] * 4)
    X2, y2 = spiral(n_per_class=50, n_classes=4, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = spiral(n_per_class=50, n_classes=4, seed=4)
    assert not np.array_equal(X, X3)
    assert np.linalg.norm(X, axis=1).max() <= 1.0 + 1e-12


def test_spiral_noise_free_geometry():
    n, k = 20, 3
    X, y = spiral(n_per_class=n, n_classes=k, noise=0.0, seed=0, shuffle=False)
    np.testing.assert_array_equal(y, np.repeat(np.arange(k), n))
    r = np.linspace(0, 1, n)
    for c in range(k):
        angle = 2 * np.pi * c / k + 4 * r
        expected = np.column_stack([r * np.sin(angle), r * np.cos(angle)])
        np.testing.assert_allclose(X[y == c], expected, atol=1e-12)
    # Radius grows from the centre to the tip of each arm.
    np.testing.assert_allclose(np.linalg.norm(X[y == 1], axis=1), r, atol=1e-12)


def test_spiral_not_linearly_separable_and_errors():
    X, y = spiral(n_per_class=100, n_classes=3, noise=0.0, seed=0)
    # A least-squares linear classifier cannot fit the arms well.
    A = np.column_stack([X, np.ones(len(X))])
    W, *_ = np.linalg.lstsq(A, one_hot(y, 3), rcond=None)
    assert (A @ W).argmax(axis=1).tolist() != y.tolist()
    with pytest.raises(ValueError, match=r"noise must be .*>= 0.*-0\.1"):
        spiral(noise=-0.1)
    with pytest.raises(ValueError, match=r"n_per_class must be an integer >= 1, got 0"):
        spiral(n_per_class=0)


# -------------------------------------------------------------------- sine
def test_sine_noise_free():
    X, y = sine(n_samples=64, seed=0)
    assert X.shape == (64, 1) and y.shape == (64, 1)
    assert X.dtype == y.dtype == np.float64
    np.testing.assert_allclose(y, np.sin(X))
    assert X.min() >= -np.pi and X.max() < np.pi
    Xb, yb = sine(n_samples=10, low=0.0, high=1.0, seed=0, dtype=np.float32)
    assert Xb.dtype == np.float32 and 0.0 <= Xb.min() and Xb.max() < 1.0


def test_sine_noise_and_determinism():
    X, y = sine(n_samples=4000, noise=0.1, seed=1)
    resid = y - np.sin(X)
    assert 0.09 < resid.std() < 0.11
    np.testing.assert_array_equal(sine(n_samples=5, seed=9)[0], sine(n_samples=5, seed=9)[0])
    with pytest.raises(ValueError, match=r"low must be < high, got low=1\.0, high=1\.0"):
        sine(low=1.0, high=1.0)
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 1, got -3"):
        sine(n_samples=-3)


# -------------------------------------------------------- train_test_split
def test_train_test_split_partition_and_determinism():
    X = np.arange(50).reshape(25, 2)
    y = np.arange(25)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0)
    assert Xtr.shape == (20, 2) and Xte.shape == (5, 2)
    np.testing.assert_array_equal(Xtr[:, 0] // 2, ytr)  # rows stay paired
    np.testing.assert_array_equal(Xte[:, 0] // 2, yte)
    assert sorted(ytr.tolist() + yte.tolist()) == list(range(25))
    again = train_test_split(X, y, test_size=0.2, seed=0)
    np.testing.assert_array_equal(again[3], yte)
    other = train_test_split(X, y, test_size=0.2, seed=1)
    assert not np.array_equal(other[3], yte)
    assert ytr.tolist() != sorted(ytr.tolist())  # shuffled


def test_train_test_split_stratified():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    X = np.arange(100.0)[:, None]
    _, _, ytr, yte = train_test_split(X, y, test_size=0.3, seed=4, stratify=True)
    np.testing.assert_array_equal(np.bincount(yte), [18, 9, 3])
    np.testing.assert_array_equal(np.bincount(ytr), [42, 21, 7])
    # Regression targets of shape (n, 1) work without stratification.
    Xs, ys = sine(n_samples=10, seed=0)
    parts = train_test_split(Xs, ys, test_size=0.3, seed=0)
    assert [p.shape for p in parts] == [(7, 1), (3, 1), (7, 1), (3, 1)]


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.2])
def test_train_test_split_bad_test_size(test_size):
    with pytest.raises(ValueError, match=rf"test_size must be .*> 0.*< 1, got {test_size}"):
        train_test_split(np.zeros((10, 1)), np.zeros(10), test_size=test_size)


def test_train_test_split_other_errors():
    with pytest.raises(ValueError, match=r"same number of rows.*10.*9"):
        train_test_split(np.zeros((10, 1)), np.zeros(9))
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have only 1"):
        train_test_split(np.zeros((5, 1)), np.array([0, 0, 1, 1, 2]), stratify=True)
    with pytest.raises(ValueError, match=r"at least 2 samples.*got 1"):
        train_test_split(np.zeros((1, 1)), np.zeros(1))


# ------------------------------------------------------------- standardize
def test_standardize_function_zero_variance_and_others():
    rng = np.random.default_rng(0)
    X_train = np.column_stack([rng.normal(5, 3, 100), np.full(100, 7.0), rng.normal(-2, 0.5, 100)])
    X_test = np.column_stack([rng.normal(5, 3, 20), np.full(20, 9.0), rng.normal(-2, 0.5, 20)])
    Ztr, Zte, mean, std = standardize(X_train, X_test)
    assert not np.isnan(Ztr).any() and not np.isnan(Zte).any()
    np.testing.assert_allclose(Ztr.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Ztr[:, [0, 2]].std(axis=0), 1.0)
    np.testing.assert_array_equal(Ztr[:, 1], 0.0)
    assert std[1] == 1.0 and mean[1] == 7.0
    np.testing.assert_allclose(Zte, (X_test - X_train.mean(0)) / std)  # training stats
    np.testing.assert_array_equal(Zte[:, 1], 2.0)


def test_standardizer_class_roundtrip_and_errors():
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    s = Standardizer()
    with pytest.raises(RuntimeError, match="not fitted"):
        s.transform(X)
    Z = s.fit_transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(s.inverse_transform(Z), X, atol=1e-5)
    with pytest.raises(ValueError, match=r"feature shape \(3,\).*\(2, 2\)"):
        s.transform(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"eps must be .*>= 0.*-1"):
        Standardizer(eps=-1)


# ----------------------------------------------------------------- one_hot
def test_one_hot_values():
    out = one_hot([2, 0, 1, 2])
    np.testing.assert_array_equal(out, np.eye(3)[[2, 0, 1, 2]])
    assert out.dtype == np.float64
    wide = one_hot(np.array([1.0, 3.0]), n_classes=5, dtype=np.float32)
    assert wide.shape == (2, 5) and wide.dtype == np.float32
    np.testing.assert_array_equal(wide.argmax(axis=1), [1, 3])
    assert one_hot(np.array([], dtype=int), n_classes=4).shape == (0, 4)


@pytest.mark.parametrize("float_dtype", [np.float16, np.float32, np.float64])
def test_one_hot_accepts_integral_floats(float_dtype):
    labels = np.array([2, 0, 1, 0])
    for n_classes in (None, 3, 4):
        expected = one_hot(labels, n_classes=n_classes, dtype=np.float32)
        got = one_hot(labels.astype(float_dtype), n_classes=n_classes, dtype=np.float32)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(one_hot(np.array([-0.0, 1.0])), np.eye(2))


@pytest.mark.parametrize(
    "y,n_classes,exc,pattern",
    [
        # the first offending label is named, with its index and the expected range
        ([0, -1, -2], None, ValueError,
         r"^one_hot: y contains label -1 at index 1 but class labels must be integers >= 0$"),
        ([0, -1, 2], 3, ValueError,
         r"^one_hot: y contains label -1 at index 1 but n_classes=3, so labels must be "
         r"integers in 0\.\.2$"),
        ([0, 3, 5], 3, ValueError, r"label 3 at index 1 but n_classes=3, .* in 0\.\.2$"),
        ([0.0, 3.0], 3, ValueError, r"label 3\.0 at index 1 but n_classes=3"),
        # compared before the int64 cast, so a huge value is not reported as another label
        ([0.0, 1e30], 3, ValueError, r"label 1e\+30 at index 1 but n_classes=3"),
        ([0.0, 1e30], None, ValueError, r"label 1e\+30 at index 1 but class labels must fit"),
        (np.array([0, 2**63], dtype=np.uint64), None, ValueError,
         r"label 9223372036854775808 at index 1 .*fit in int64"),
        ([0.0, 1.5], None, ValueError,
         r"^one_hot: y must hold integer class labels, got non-integral value 1\.5 at index 1$"),
        ([0.0, 1.5], 3, ValueError, r"integer class labels in 0\.\.2, got non-integral value 1\.5"),
        ([0.0, np.nan], None, ValueError, r"non-integral value nan at index 1"),
        ([0.0, -np.inf], 3, ValueError, r"non-integral value -inf at index 1"),
        ([[0, 1]], None, ValueError, r"^one_hot: y must be a 1-D array .*shape \(1, 2\)"),
        (np.array(3), None, ValueError, r"1-D.*shape \(\)"),
        (["a", "b"], None, TypeError, r"^one_hot: y must hold integer class labels .*dtype <U1$"),
        ([True, False], 2, TypeError, r"integer class labels in 0\.\.1 .*dtype bool$"),
        ([1j, 0j], None, TypeError, r"integer class labels .*dtype complex128$"),
        ([0, 1], 0, ValueError, r"n_classes must be an integer >= 1, got 0"),
        (np.array([], dtype=int), None, ValueError, r"n_classes must be given"),
        # a label that fits int64 but makes a one-hot too big for memory
        ([0, 2**62], None, ValueError,
         r"^one_hot: a \(2, 4611686018427387905\) array of float64 does not fit in memory "
         r"\(n_classes, inferred as max\(y\) \+ 1, = 4611686018427387905\); check the labels"),
        ([0, 1], 2**62, ValueError, r"does not fit in memory \(n_classes = 4611686018427387904\)"),
    ],
)
def test_one_hot_errors(y, n_classes, exc, pattern):
    with pytest.raises(exc, match=pattern):
        one_hot(y, n_classes=n_classes)


# ------------------------------------------------------------------ digits
def _digits_resource():
    return resources.files("nn").joinpath("datasets", "digits.npz")


def test_digits_npz_file_format():
    ref = _digits_resource()
    assert ref.is_file()
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["images", "labels"]
        images, labels = npz["images"], npz["labels"]
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert labels.dtype == np.uint8 and labels.shape == (1797,)
    assert images.max() == 16 and images.min() == 0
    assert np.bincount(labels).tolist() == DIGITS_COUNTS
    assert sum(DIGITS_COUNTS) == 1797


def test_digits_checksums_match_readme():
    readme = resources.files("nn").joinpath("datasets", "README.txt").read_text()
    hashes = re.findall(r"\b[0-9a-f]{64}\b", readme)
    file_sha = hashlib.sha256(_digits_resource().read_bytes()).hexdigest()
    assert file_sha in hashes
    images, labels = load_digits(flatten=False, dtype=np.uint8, scale=False)
    assert content_sha256(images, labels) in hashes
    for needle in ("10.24432/C50P49", "CC BY 4.0", "Alpaydin", "Kaynak", "scikit-learn"):
        assert needle in readme


def test_load_digits_default():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == DIGITS_COUNTS
    assert all(174 <= c <= 183 for c in DIGITS_COUNTS)
    assert len(DIGITS_CLASSES) == 10
    # Pixel values are multiples of 1/16.
    np.testing.assert_array_equal(X * 16, np.round(X * 16))


def test_load_digits_options_and_copies():
    imgs, y = load_digits(flatten=False, scale=False, dtype=np.uint8)
    assert imgs.shape == (1797, 8, 8) and imgs.dtype == np.uint8 and imgs.max() == 16
    X, _ = load_digits(dtype=np.float32)
    assert X.dtype == np.float32
    np.testing.assert_allclose(X.reshape(-1, 8, 8) * 16, imgs)
    X[:] = -1.0  # callers get their own arrays
    assert load_digits()[0].min() == 0.0
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        load_digits(dtype=np.int32, scale=True)


def test_digits_split_fixed_and_standardised():
    Xtr, Xte, ytr, yte = digits_split()
    assert Xtr.shape == (1437, 64) and Xte.shape == (360, 64)
    assert ytr.dtype == yte.dtype == np.int64
    assert not np.isnan(Xtr).any() and not np.isnan(Xte).any()
    np.testing.assert_allclose(Xtr.mean(axis=0), 0.0, atol=1e-10)
    stds = Xtr.std(axis=0)
    assert np.all((np.abs(stds - 1) < 1e-8) | (stds == 0))
    # Stratified: every class's test share is within one sample of 20%.
    total = np.bincount(ytr, minlength=10) + np.bincount(yte, minlength=10)
    assert total.tolist() == DIGITS_COUNTS
    expected = 0.2 * np.array(DIGITS_COUNTS)
    assert np.all(np.abs(np.bincount(yte, minlength=10) - expected) <= 1)
    # Deterministic: the same split every call.
    again = digits_split()
    for a, b in zip((Xtr, Xte, ytr, yte), again):
        np.testing.assert_array_equal(a, b)
    other = digits_split(seed=1)
    assert not np.array_equal(other[3], yte)


def test_digits_split_rejects_unfixed_seed():
    with pytest.raises(TypeError, match="seed must be an integer"):
        digits_split(seed=None)
    with pytest.raises(ValueError, match="test_size must be"):
        digits_split(test_size=1.0)


# --------------------------------------------------------------------- IDX
def _idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file written by hand, independently of save_idx."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


@pytest.mark.parametrize("compressed", [False, True])
def test_load_idx_round_trip_hand_written(tmp_path, compressed):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 3], dtype=np.uint8)
    img_bytes = _idx_bytes(0x08, images.shape, images.tobytes())
    lab_bytes = _idx_bytes(0x08, labels.shape, labels.tobytes())
    assert img_bytes[:4] == b"\x00\x00\x08\x03" and lab_bytes[:4] == b"\x00\x00\x08\x01"
    if compressed:
        img_bytes, lab_bytes = gzip.compress(img_bytes), gzip.compress(lab_bytes)
    # Deliberately misleading names: detection must use the magic bytes.
    img_path = tmp_path / ("images.raw" if compressed else "images.gz")
    lab_path = tmp_path / "labels.idx"
    img_path.write_bytes(img_bytes)
    lab_path.write_bytes(lab_bytes)
    got_images, got_labels = load_idx(img_path), load_idx(str(lab_path))
    assert got_images.dtype == np.uint8 and got_images.shape == (2, 3, 4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] = 99  # writable copy
    assert got_images[0, 0, 0] == 99


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_save_idx_load_idx_round_trip(tmp_path, dtype, name):
    arr = (np.arange(30).reshape(5, 6) - 10).astype(dtype) if np.dtype(dtype).kind != "u" \
        else np.arange(30, dtype=dtype).reshape(5, 6)
    path = save_idx(tmp_path / name, arr)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = load_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (5, 6)
    np.testing.assert_array_equal(back, arr)


def test_save_idx_is_big_endian(tmp_path):
    path = save_idx(tmp_path / "x", np.array([1, 258], dtype=np.int16))
    assert path.read_bytes() == b"\x00\x00\x0b\x01" + b"\x00\x00\x00\x02" + b"\x00\x01\x01\x02"


def test_load_idx_truncated_payload(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_bytes(0x08, (2, 3, 4), bytes(20)))
    with pytest.raises(ValueError) as info:
        load_idx(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "expected 24 bytes" in msg and "found 20" in msg and "truncated" in msg


def test_load_idx_trailing_bytes_and_short_header(tmp_path):
    extra = tmp_path / "extra"
    extra.write_bytes(_idx_bytes(0x08, (3,), bytes(5)))
    with pytest.raises(ValueError, match=r"expected 3 bytes.*found 5 \(trailing bytes\)"):
        load_idx(extra)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(ValueError, match=r"short: expected a 16-byte header.*found only 8"):
        load_idx(short)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=r"tiny: expected a 4-byte IDX magic.*only 2"):
        load_idx(tiny)


def test_load_idx_truncated_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(_idx_bytes(0x08, (100,), bytes(100)))[:-12])
    with pytest.raises(ValueError, match=r"labels\.gz: expected a complete gzip stream"):
        load_idx(path)


def test_load_idx_wrong_magic(tmp_path):
    bad = tmp_path / "not-idx.bin"
    bad.write_bytes(b"\x50\x4b\x03\x04" + bytes(16))  # a zip header, not IDX
    with pytest.raises(ValueError) as info:
        load_idx(bad)
    msg = str(info.value)
    assert "not-idx.bin" in msg and "00 00" in msg and "50 4b 03 04" in msg
    code = tmp_path / "code.bin"
    code.write_bytes(_idx_bytes(0x07, (1,), b"\x00"))
    with pytest.raises(ValueError, match=r"code\.bin: expected an IDX element type code.*found 0x07"):
        load_idx(code)
    zero = tmp_path / "zero.bin"
    zero.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match=r"zero\.bin: expected at least 1 dimension"):
        load_idx(zero)


def test_load_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope")


# ------------------------------------------------------------------- MNIST
def _write_fake_mnist(directory: Path, n_train=6, n_test=4, gz=(True, False, True, False)):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    parts["train-images-idx3-ubyte"][0, 0, 0] = 255
    for (name, arr), compressed in zip(parts.items(), gz):
        save_idx(directory / (name + (".gz" if compressed else "")), arr)
    return parts


def test_load_mnist_from_directory(tmp_path):
    parts = _write_fake_mnist(tmp_path / "mn")
    X_train, y_train, X_test, y_test = load_mnist(tmp_path / "mn", kind="mnist")
    assert X_train.shape == (6, 784) and X_test.shape == (4, 784)
    assert X_train.dtype == np.float64 and y_train.dtype == np.int64
    assert X_train.min() >= 0.0 and X_train.max() == 1.0
    np.testing.assert_allclose(X_train * 255, parts["train-images-idx3-ubyte"].reshape(6, -1))
    np.testing.assert_array_equal(y_test, parts["t10k-labels-idx1-ubyte"])
    imgs, _, _, _ = load_mnist(str(tmp_path / "mn"), flatten=False, scale=False, dtype=np.uint8)
    assert imgs.shape == (6, 28, 28) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs, parts["train-images-idx3-ubyte"])
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        load_mnist(tmp_path / "mn", dtype=np.uint8, scale=True)


def test_load_mnist_count_mismatch(tmp_path):
    d = tmp_path / "mm"
    _write_fake_mnist(d)
    save_idx(d / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"has 4 images but .*t10k-labels-idx1-ubyte has 3 labels"):
        load_mnist(d)


def test_load_mnist_missing_file_message(tmp_path):
    d = tmp_path / "partial"
    _write_fake_mnist(d)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(d)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte" in msg
    assert "train-images-idx3-ubyte" not in msg  # only the missing one is listed
    assert "apt-get install dataset-fashion-mnist" in msg and "--data DIR" in msg


def test_load_mnist_missing_directory_and_bad_kind(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "absent")
    msg = str(info.value)
    assert "absent" in msg and "does not exist" in msg
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    with pytest.raises(FileNotFoundError, match=r"MNIST has no default location.*--data DIR"):
        load_mnist(kind="mnist")
    with pytest.raises(ValueError, match=r"kind must be 'fashion-mnist' or 'mnist', got 'emnist'"):
        load_mnist(tmp_path, kind="emnist")


def test_class_name_tuples():
    assert len(FASHION_MNIST_CLASSES) == 10 and isinstance(FASHION_MNIST_CLASSES, tuple)
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert MNIST_CLASSES == tuple("0123456789")


def test_fashion_mnist_installed():
    if not FASHION_MNIST_DIR.is_dir():
        reason = (f"Fashion-MNIST not installed at {FASHION_MNIST_DIR}: "
                  "apt-get install dataset-fashion-mnist")
        print(reason)
        pytest.skip(reason)
    X_train, y_train, X_test, y_test = load_mnist(dtype=np.float32)
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert X_train.dtype == np.float32 and 0.0 <= X_train.min() and X_train.max() <= 1.0
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_load_mnist_refuses_an_integer_dtype_too_small_for_pixels_before_reading(tmp_path):
    import nn.data
    with pytest.raises(ValueError, match=r"dtype: int8 cannot hold pixel values up to 255"):
        nn.data.load_mnist(tmp_path, scale=False, dtype=np.int8)    # no files needed to refuse


def test_load_mnist_refuses_bool_pixels_and_a_file_given_as_its_folder(tmp_path):
    import nn.data
    with pytest.raises(ValueError, match=r"dtype: bool cannot hold pixel values"):
        nn.data.load_mnist(tmp_path, scale=False, dtype=bool)
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(FileNotFoundError, match=r"directory .*afile is a file; pass the folder"):
        nn.data.load_mnist(afile)


def test_load_idx_with_a_header_whose_sizes_overflow_int64_says_truncated(tmp_path):
    import struct
    path = tmp_path / "huge.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**31)
                     + b"\x00" * 10)
    with pytest.raises(ValueError, match=r"expected 39614081238685424725209907200 bytes .* "
                                         r"found 10 \(truncated file\?\)"):
        load_idx(path)


def test_a_stratified_split_gives_the_documented_test_size_or_says_why_not():
    # the per-class cap (one training example kept per class) quietly shrank the test set
    y = np.array([0] * 2 + [1] * 20 + [2] * 3)
    for test_size in (0.5, 0.8, 0.85):
        _, _, y_train, y_test = train_test_split(np.arange(25), y, test_size=test_size,
                                                 stratify=True, seed=0)
        assert len(y_test) == math.ceil(test_size * 25)
        assert set(y_train) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"test_size=0\.9 asks for 6 test rows, but with "
                                         r"stratify=True at most 4 fit"):
        train_test_split(np.arange(7), [0, 0, 1, 1, 2, 2, 2], test_size=0.9, stratify=True)


def test_standardizer_names_non_numeric_input_in_transform():
    s = Standardizer().fit(np.ones((3, 2)))
    for call in (s.transform, s.inverse_transform):
        with pytest.raises(TypeError, match=r"^Standardizer\.\w+: [XZ] must be numeric, got "
                                            r"dtype <U1"):
            call(np.array([["a", "b"]]))


def test_mnist_test_images_of_another_size_are_named(tmp_path):
    save_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    save_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(4).astype(np.uint8))
    save_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 20, 20), np.uint8))
    save_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(2).astype(np.uint8))
    with pytest.raises(ValueError, match=r"test images of shape \(400,\) \(per image\) but the "
                                         r"training images .* are \(784,\)"):
        load_mnist(tmp_path, kind="mnist")


def test_a_constant_column_of_large_values_becomes_zero():
    # its computed std is rounding noise (4.6e-05 for 1.7e9), which passed eps: the training
    # column became 1.0 and a test value 1 away from it 21510
    rng = np.random.default_rng(0)
    X_train = np.column_stack([np.full(1437, 1_712_345_678.9), rng.normal(size=1437)])
    Ztr, Zte, mean, std = standardize(X_train, np.array([[1_712_345_679.9, 0.0]]))
    assert std[0] == 1.0 and mean[0] == 1_712_345_678.9
    np.testing.assert_array_equal(Ztr[:, 0], 0.0)
    np.testing.assert_allclose(Zte[0, 0], 1.0, rtol=1e-6)
    for value in (3.0, 1e-3, 123456.789, 1e15):             # any constant: exactly 0
        s = Standardizer().fit(np.full((50, 1), value))
        assert s.std_[0] == 1.0 and np.all(s.transform(np.full((5, 1), value)) == 0.0)


def test_standardizer_refuses_nan_and_infinite_training_data():
    # a NaN made the column NaN in every array transformed, the clean test set included
    X = np.random.default_rng(0).normal(size=(100, 3))
    for bad in (np.nan, np.inf):
        X[5, 0] = bad
        with pytest.raises(ValueError, match=rf"^Standardizer\.fit: X holds 1 NaN or infinite "
                                             rf"value\(s\), the first {bad} at index \(5, 0\)"):
            Standardizer().fit(X)
        with pytest.raises(ValueError, match=r"^Standardizer\.fit: X holds 1 NaN"):
            standardize(X, X[:3])


def test_standardizer_checks_shapes_both_ways_and_names_one_sample():
    s = Standardizer().fit(np.random.default_rng(0).normal(size=(10, 3)))
    for call, name in ((s.transform, "transform: X"), (s.inverse_transform,
                                                       "inverse_transform: Z")):
        # inverse_transform broadcast a (2, 1) array to (2, 3) silently
        for shape in ((2, 1), (2, 4)):
            with pytest.raises(ValueError, match=rf"^Standardizer\.{name} must be rows of "
                                                 rf"feature shape \(3,\) \(as fitted\), got an "
                                                 rf"array of shape \({shape[0]}, {shape[1]}\)$"):
                call(np.ones(shape))
        with pytest.raises(ValueError, match=rf"got an array of shape \(3,\); one sample of "
                                             rf"shape \(3,\) must be a row: "
                                             rf"{name[-1]}\.reshape\(1, -1\)"):
            call(np.ones(3))
    with pytest.raises(ValueError, match=r"^standardize: others\[1\] must be rows of feature "
                                         r"shape \(3,\)"):
        standardize(np.ones((4, 3)), np.ones((2, 3)), np.ones((2, 2)))


@pytest.mark.parametrize("call, message", [
    (lambda: Standardizer().fit([[1, 2], [3]]), r"^Standardizer\.fit: X is not an array"),
    (lambda: train_test_split([[1, 2], [3]], [0, 1]), r"^train_test_split: X is not an array"),
    (lambda: train_test_split(np.ones((2, 1)), [[0], [1, 2]]),
     r"^train_test_split: y is not an array"),
    (lambda: one_hot([[0], [1, 2]]), r"^one_hot: y is not an array"),
    (lambda: save_idx("unused.idx", [[1, 2], [3]]), r"^save_idx: array is not an array"),
    (lambda: one_hot(np.array([], dtype=int)), r"^one_hot: n_classes must be given"),
    (lambda: train_test_split(np.ones((1, 2)), [0]), r"^train_test_split: need at least 2"),
    (lambda: train_test_split(np.ones((3, 2)), [0, 1]),
     r"^train_test_split: X and y must have the same number of rows"),
])
def test_data_functions_name_themselves_and_a_ragged_list(call, message):
    # ragged lists reached the user as numpy's "setting an array element with a sequence"
    with pytest.raises(ValueError, match=message):
        call()


def test_mnist_labels_outside_the_classes_are_named_with_their_file(tmp_path):
    # a corrupt label file loaded silently; fit then named the label but not the file
    for split, n in (("train", 4), ("t10k", 2)):
        save_idx(tmp_path / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
    save_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1], np.int8))
    for labels, shown in ((np.array([0, 1, 200, 3], np.uint8), "200 at index 2"),
                          (np.array([0, -1, 2, -3], np.int8), "-1 at index 1")):
        save_idx(tmp_path / "train-labels-idx1-ubyte", labels)
        with pytest.raises(ValueError, match=rf"train-labels-idx1-ubyte: label {shown} \(\d "
                                             rf"label\(s\) outside 0\.\.9 in all\)"):
            load_mnist(tmp_path, kind="mnist")


def test_a_stratified_split_gives_a_capped_class_s_row_to_the_class_furthest_below_its_quota():
    # the spare test row went by the first remainders, to a class already rounded up:
    # [12, 22, 23, 2] for quotas [12.46, 22.44, 21.61, 2.49] (21.61 -> 23)
    from nn.data.preprocessing import _stratified_test_counts
    take = _stratified_test_counts(np.array([15, 27, 26, 3]), 59)
    assert take.tolist() == [13, 22, 22, 2]
    quota = np.array([15, 27, 26, 3]) * 59 / 71
    assert np.all(np.abs(take - quota) < 1)


@pytest.mark.parametrize("call, message", [
    (lambda: nn.data.one_hot(np.array([0, 1]), n_classes="3"),
     r"^one_hot: n_classes must be an integer >= 1, got '3'"),
    (lambda: nn.data.spiral(noise="a"), r"^spiral: noise must be a finite number >= 0"),
    (lambda: nn.data.spiral(seed=-1), r"^spiral: seed must be None, a non-negative integer"),
    (lambda: nn.data.blobs(spread="a"), r"^blobs: spread must be a finite number > 0"),
    (lambda: nn.data.blobs(n_samples=2, n_classes=3), r"^blobs: n_samples must be >= n_classes"),
    (lambda: nn.data.sine(low=1.0, high=0.0), r"^sine: low must be < high"),
    (lambda: nn.data.digits_split(seed=None), r"^digits_split: seed must be an integer >= 0"),
    (lambda: nn.data.load_digits(dtype="int8", scale=True), r"^load_digits: dtype"),
    (lambda: nn.MLP([2, 3], ["softmax"], seed=-1), r"^nn\.MLP: seed must be None"),
    (lambda: nn.MLP([2, 3], ["softmax"], rng="x"), r"^nn\.MLP: rng must be None, a non-neg"),
    (lambda: nn.manual.MLP([2, 3], ["softmax"], seed=-1), r"^MLP: seed must be None"),
    (lambda: activations.get("relux"), r"^activations\.get: unknown activation 'relux'"),
    (lambda: activations.get(42), r"^activations\.get: activation must be a name"),
])
def test_argument_errors_start_with_the_function_they_come_from(call, message):
    # they said "noise must be ...", "seed must be ...": which call of the learner's script?
    with pytest.raises((TypeError, ValueError), match=message):
        call()
