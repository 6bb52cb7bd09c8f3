"""Handwritten digits (UCI 8x8, shipped with the package) with the graph MLP and Adam.

What it shows
-------------
* Real data without downloads: ``nn.data.digits_split()`` gives a fixed, stratified,
  standardised split of the 1,797 UCI digits (1437 train / 360 test, 64 pixels each).
* ``nn.MLP`` trained with Adam on mini-batches; the test accuracy and a plain-text
  confusion matrix (which digits get mistaken for which).
* The project's central check on a real batch: the trained graph model is copied into
  the hand-written ``nn.manual.MLP`` (``to_manual()``), and ``nn.crosscheck`` compares
  the manual backprop gradients with tinygraph's autodiff gradients (and both with
  finite differences) layer by layer. In float64 they agree to ~1e-16.

Run it (from the repository root; ``pip install -e .`` or ``export PYTHONPATH=$PWD``)
-------------------------------------------------------------------------------------
    python examples/digits.py                    # [64, 64, 10], 30 epochs, ~1 s
    python examples/digits.py --hidden 128 64 --epochs 50
    python examples/digits.py --quick

Exits with status 1 if the test accuracy is below ``--target`` (default 0.93; 0.85 with
``--quick``) or the gradient cross-check disagrees.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import nn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few epochs, for a smoke test")
    p.add_argument("--hidden", type=int, nargs="+", default=[64],
                   help="hidden layer widths (default 64)")
    p.add_argument("--epochs", type=int, default=None, help="default 30 (5 with --quick)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default 1e-3; 3e-3 with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-batch", type=int, default=64,
                   help="rows of the test set used for the gradient cross-check (default 64)")
    p.add_argument("--target", type=float, default=None,
                   help="test accuracy needed to succeed (default 0.93; 0.85 with --quick)")
    args = p.parse_args(argv)
    q = args.quick
    if args.epochs is None:
        args.epochs = 5 if q else 30
    if args.lr is None:
        args.lr = 3e-3 if q else 1e-3
    if args.target is None:
        args.target = 0.85 if q else 0.93
    return args


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """counts[i, j] = how many samples of true class i were predicted as class j."""
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def format_confusion(counts: np.ndarray) -> str:
    """Rows = true digit, columns = predicted digit; the diagonal is the correct ones."""
    k = counts.shape[0]
    lines = ["true \\ predicted " + "".join(f"{j:>5}" for j in range(k)) + "   recall"]
    for i in range(k):
        # '.' for zero off the diagonal makes the mistakes stand out.
        cells = "".join(f"{counts[i, j]:>5}" if (counts[i, j] or i == j) else f"{'.':>5}"
                        for j in range(k))
        lines.append(f"{i:>16} {cells}   {counts[i, i] / counts[i].sum():6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    X_train, X_test, y_train, y_test = nn.data.digits_split(seed=0)

    sizes = [64, *args.hidden, 10]
    model = nn.MLP(sizes, ["relu"] * len(args.hidden) + ["softmax"], seed=args.seed)
    print(f"UCI digits: {len(X_train)} train / {len(X_test)} test images of 8x8 pixels; "
          f"network {sizes}; Adam lr {args.lr:g}, batch {args.batch_size}, {args.epochs} epochs")

    # validation_data makes fit() record the test loss/accuracy after every epoch.
    t0 = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=args.epochs, learning_rate=args.lr,
                        batch_size=args.batch_size, optimizer="adam",
                        validation_data=(X_test, y_test))
    seconds = time.perf_counter() - t0
    for e in sorted({1, args.epochs // 2, args.epochs} - {0}):
        print(f"  epoch {e:>3}: loss {history[e - 1]:.4f}, train accuracy "
              f"{history.train_accuracy[e - 1]:.3f}, test accuracy {history.val_accuracy[e - 1]:.3f}")

    y_pred = model.predict(X_test)
    test_acc = float(np.mean(y_pred == y_test))
    print(f"\ntest accuracy {test_acc:.4f} ({int(np.sum(y_pred == y_test))}/{len(y_test)}), "
          f"trained in {seconds:.2f} s\n")
    print("confusion matrix on the test set")
    print(format_confusion(confusion_matrix(y_test, y_pred, 10)))

    # --- Cross-check: hand-derived backprop vs autodiff, on the trained weights ------------
    # to_manual() copies the trained weights into the hand-written MLP; crosscheck then
    # runs both backward passes on the same batch and compares every dW and db.
    # "numerical" compares autodiff with central finite differences on a few elements.
    batch = slice(0, args.check_batch)
    report = nn.crosscheck(model.to_manual(), X_test[batch], y_test[batch])
    print()
    print(report)

    acc_ok = test_acc >= args.target
    print(f"\nsummary: test accuracy {test_acc:.4f} "
          f"({'>=' if acc_ok else '<'} target {args.target}); manual vs autodiff gradients "
          f"{'agree' if report.ok else 'DISAGREE'}")
    if acc_ok and report.ok:
        print("SUCCESS")
        return 0
    print("FAILURE")
    return 1


if __name__ == "__main__":
    sys.exit(main())
