"""Datasets for tinygraph's ``nn`` examples and tests - nothing is downloaded at run time.

Synthetic (numpy only; ``seed`` is None, an int, or a ``numpy.random.Generator``):
    :func:`xor`, :func:`blobs`, :func:`spiral`, :func:`sine`

Preprocessing:
    :func:`train_test_split`, :class:`Standardizer`, :func:`standardize`,
    :func:`one_hot`

Real data shipped with the package (UCI handwritten digits, CC BY 4.0):
    :func:`load_digits`, :func:`digits_split`

MNIST-format files on disk (e.g. Debian's ``dataset-fashion-mnist``):
    :func:`load_idx`, :func:`save_idx`, :func:`load_mnist`,
    :data:`FASHION_MNIST_CLASSES`

Example::

    from nn.data import digits_split, one_hot
    X_train, X_test, y_train, y_test = digits_split()
    Y_train = one_hot(y_train, n_classes=10)
"""

from __future__ import annotations

from .digits import DIGITS_CLASSES, DIGITS_N_SAMPLES, digits_split, load_digits
from .mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    MNIST_CLASSES,
    MNIST_FILES,
    load_idx,
    load_mnist,
    save_idx,
)
from .preprocessing import Standardizer, one_hot, standardize, train_test_split
from .synthetic import blobs, sine, spiral, xor

__all__ = [
    "xor",
    "blobs",
    "spiral",
    "sine",
    "train_test_split",
    "Standardizer",
    "standardize",
    "one_hot",
    "load_digits",
    "digits_split",
    "DIGITS_CLASSES",
    "DIGITS_N_SAMPLES",
    "load_idx",
    "save_idx",
    "load_mnist",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "MNIST_FILES",
]
