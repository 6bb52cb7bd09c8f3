"""Fashion-MNIST with the spec's exact network: [784, 256, 128, 10], ReLU, ReLU, softmax.

What it shows
-------------
* The network of the spec's shape walkthrough (784 -> 256 -> 128 -> 10, 235,146
  parameters) built from tinygraph nodes (``nn.MLP``), trained on 60,000 28x28
  clothing images and tested on 10,000.
* Loading MNIST-format IDX files with ``nn.data.load_mnist`` (nothing is downloaded);
  float32 halves the memory and roughly doubles the speed compared with float64.
* A training loop that keeps one optimizer across epochs: ``fit(..., epochs=1,
  optimizer=opt)`` is called once per epoch with the same ``nn.Adam`` (or ``nn.SGD``),
  so the optimizer state carries over and the test accuracy can be printed per epoch.

The data
--------
On Debian/Ubuntu: ``sudo apt-get install dataset-fashion-mnist`` (installs the four
files to /usr/share/datasets/fashion-mnist, the default location). Otherwise download
the four ``*-ubyte.gz`` files from https://github.com/zalandoresearch/fashion-mnist and
pass ``--data DIR``. Without the data the script prints how to get it and exits with
status 2.

Run it (from the repository root; ``pip install -e .`` or ``export PYTHONPATH=$PWD``)
-------------------------------------------------------------------------------------
    python examples/fashion_mnist.py                  # 10 epochs of Adam, ~20-30 s
    python examples/fashion_mnist.py --optimizer sgd --lr 0.1   # the spec's vanilla GD
    python examples/fashion_mnist.py --quick          # 5,000 training images, 1 epoch
    python examples/fashion_mnist.py --data ~/fashion-mnist

On a busy machine numpy's multi-threaded BLAS can be 10-20x slower than one thread;
``OPENBLAS_NUM_THREADS=1 python examples/fashion_mnist.py`` avoids that.

Exits with status 1 if the test accuracy is below ``--target`` (default 0.85; 0.6 with
``--quick``).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import nn
from nn.data import FASHION_MNIST_CLASSES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="train on a 5,000-image subset for 1 epoch")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder with the four IDX files (default: Debian's "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=None, help="default 10 (1 with --quick)")
    p.add_argument("--train-size", type=int, default=None,
                   help="use only the first N training images (default all; 5000 with --quick)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 1e-3 for Adam, 0.1 for SGD)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=None,
                   help="test accuracy needed to succeed (default 0.85; 0.6 with --quick)")
    args = p.parse_args(argv)
    q = args.quick
    if args.epochs is None:
        args.epochs = 1 if q else 10
    if args.train_size is None and q:
        args.train_size = 5000
    if args.lr is None:
        args.lr = 1e-3 if args.optimizer == "adam" else 0.1
    if args.target is None:
        args.target = 0.6 if q else 0.85
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    # --- Data -------------------------------------------------------------------------
    # load_mnist raises FileNotFoundError with a message that lists the missing files and
    # says how to get them; show that message instead of a traceback.
    try:
        X_train, y_train, X_test, y_test = nn.data.load_mnist(args.data, dtype=np.float32)
    except FileNotFoundError as exc:
        print(f"fashion_mnist.py: cannot load Fashion-MNIST.\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:       # the files are there but are not valid IDX files
        print(f"fashion_mnist.py: the Fashion-MNIST files are unreadable.\n{exc}",
              file=sys.stderr)
        return 2
    if args.train_size is not None:
        X_train, y_train = X_train[:args.train_size], y_train[:args.train_size]
    # Pixels are already scaled to [0, 1] by load_mnist; no further preprocessing.

    # --- The spec's network ------------------------------------------------------------
    sizes = [784, 256, 128, 10]
    model = nn.MLP(sizes, ["relu", "relu", "softmax"], seed=args.seed, dtype=np.float32)
    n_params = sum(p.data.size for p in model.parameters())
    opt = (nn.Adam(model.parameters(), lr=args.lr) if args.optimizer == "adam"
           else nn.SGD(model.parameters(), lr=args.lr))
    print(f"Fashion-MNIST: {len(X_train)} train / {len(X_test)} test images; network {sizes} "
          f"({n_params:,} parameters, float32); {args.optimizer} lr {args.lr:g}, "
          f"batch {args.batch_size}, {args.epochs} epoch(s)")

    # --- Training: one fit() call per epoch, sharing the optimizer --------------------
    total = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        history = model.fit(X_train, y_train, epochs=1, learning_rate=args.lr,
                            batch_size=args.batch_size, optimizer=opt)
        seconds = time.perf_counter() - t0
        total += seconds
        print(f"  epoch {epoch:>2}: loss {history[0]:.4f}, "
              f"test accuracy {model.score(X_test, y_test):.4f} ({seconds:.1f} s)")

    # --- Evaluation -------------------------------------------------------------------
    y_pred = model.predict(X_test)
    test_acc = float(np.mean(y_pred == y_test))
    print("\nper-class test accuracy")
    for k, name in enumerate(FASHION_MNIST_CLASSES):
        mask = y_test == k
        print(f"  {k} {name:<12} {np.mean(y_pred[mask] == k):6.1%}")
    print(f"\ntest accuracy {test_acc:.4f} ({int(np.sum(y_pred == y_test))}/{len(y_test)}); "
          f"training took {total:.1f} s")

    if test_acc >= args.target:
        print(f"SUCCESS: test accuracy {test_acc:.4f} >= {args.target}")
        return 0
    print(f"FAILURE: test accuracy {test_acc:.4f} < {args.target}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
