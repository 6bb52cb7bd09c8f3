"""Maintainer tool: rebuild ``nn/datasets/digits.npz`` from scikit-learn's CSV.

Not needed at run time (the npz is shipped with the package). To rebuild::

    pip download --no-deps --only-binary=:all: -d /tmp/skl scikit-learn
    cd /tmp/skl && unzip -o scikit_learn-*.whl sklearn/datasets/data/digits.csv.gz
    python -m nn.data._build_digits /tmp/skl/sklearn/datasets/data/digits.csv.gz

The CSV has 1797 rows of 65 integers: 64 pixel values (0..16, row-major 8x8)
followed by the class label (0..9). ``np.savez_compressed`` stamps the zip
entries with the current time, so the npz bytes (and their SHA-256) change on
every rebuild; :func:`content_sha256` of the arrays does not.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

import numpy as np

N_SAMPLES = 1797
N_PIXELS = 64


def read_digits_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse scikit-learn's ``digits.csv.gz`` (or an uncompressed copy).

    Returns:
        ``images`` uint8 ``(1797, 8, 8)`` and ``labels`` uint8 ``(1797,)``.

    Raises:
        ValueError: the file does not have the expected shape or value ranges.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    table = np.loadtxt(raw.decode("ascii").splitlines(), delimiter=",", dtype=np.float64)
    if table.shape != (N_SAMPLES, N_PIXELS + 1):
        raise ValueError(
            f"{path}: expected {N_SAMPLES} rows of {N_PIXELS + 1} columns, got shape {table.shape}"
        )
    if not np.array_equal(table, np.round(table)):
        raise ValueError(f"{path}: expected integer values only")
    pixels, labels = table[:, :N_PIXELS], table[:, N_PIXELS]
    if pixels.min() < 0 or pixels.max() > 16:
        raise ValueError(
            f"{path}: expected pixel values in 0..16, got {pixels.min()}..{pixels.max()}"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: expected labels in 0..9, got {labels.min()}..{labels.max()}")
    images = pixels.astype(np.uint8).reshape(N_SAMPLES, 8, 8)
    return images, labels.astype(np.uint8)


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the raw array bytes (images then labels), independent of zip metadata."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints sizes, class counts and checksums."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="path to sklearn/datasets/data/digits.csv.gz")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "datasets" / "digits.npz",
        help="output npz (default: nn/datasets/digits.npz)",
    )
    args = parser.parse_args(argv)
    images, labels = read_digits_csv(args.csv)
    np.savez_compressed(args.out, images=images, labels=labels)
    with np.load(args.out, allow_pickle=False) as check:
        assert np.array_equal(check["images"], images)
        assert np.array_equal(check["labels"], labels)
    file_sha = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    print(f"class counts: {np.bincount(labels, minlength=10).tolist()}")
    print(f"npz sha256:     {file_sha}")
    print(f"content sha256: {content_sha256(images, labels)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
