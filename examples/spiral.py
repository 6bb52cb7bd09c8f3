"""A K-armed 2-D spiral: a problem that needs hidden layers, solved with the graph MLP.

What it shows
-------------
* ``nn.data.spiral`` makes K interleaved arms; straight boundaries through the raw
  inputs cannot separate them, so a linear classifier (printed for comparison) gets
  only about half of the points right.
* ``nn.MLP`` (tinygraph nodes + autodiff) with two ReLU hidden layers and a softmax
  output learns curved decision boundaries; mini-batch training with Adam.
* Train/test split, accuracy on both, and (``--plot FILE``) a picture of the decision
  regions, drawn by classifying every point of a grid.

Run it (from the repository root; ``pip install -e .`` or ``export PYTHONPATH=$PWD``)
-------------------------------------------------------------------------------------
    python examples/spiral.py                       # 3 arms, 200 epochs (a few seconds)
    python examples/spiral.py --classes 5 --noise 0.1
    python examples/spiral.py --plot spiral.png     # needs matplotlib
    python examples/spiral.py --quick               # tiny settings, ~1 s

Exits with status 1 if the test accuracy is below ``--target`` (default 0.9; 0.8 with
``--quick``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import nn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data and model, few epochs")
    p.add_argument("--classes", type=int, default=3, help="number of arms K (default 3)")
    p.add_argument("--points", type=int, default=None,
                   help="points per arm (default 200; 100 with --quick)")
    p.add_argument("--noise", type=float, default=0.2, help="angular jitter (default 0.2)")
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="hidden layer widths (default 64 64; 32 32 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="default 200 (40 with --quick)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=None,
                   help="test accuracy needed to succeed (default 0.9; 0.8 with --quick)")
    p.add_argument("--plot", metavar="FILE", help="save the decision regions to FILE (png, pdf...)")
    args = p.parse_args(argv)
    if args.plot and not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
        p.error(f"--plot {args.plot}: folder {os.path.dirname(args.plot)} does not exist")
    q = args.quick
    if args.points is None:
        args.points = 100 if q else 200
    if args.hidden is None:
        args.hidden = [32, 32] if q else [64, 64]
    if args.epochs is None:
        args.epochs = 40 if q else 200
    if args.target is None:
        args.target = 0.8 if q else 0.9
    return args


def save_decision_boundary(model: nn.MLP, X: np.ndarray, y: np.ndarray, path: str) -> bool:
    """Colour the plane by the predicted class and overlay the points. False if no matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")             # draw to a file; no window needed
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot: matplotlib is not installed, so {path} was not written "
              f"(pip install matplotlib, or pip install -e '.[demo]')")
        return False
    # Classify every point of a 300 x 300 grid covering the data: the colour of each
    # region is the class the network would predict there.
    lo, hi = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    regions = model.predict(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.contourf(gx, gy, regions, levels=np.arange(model.n_outputs + 1) - 0.5,
                cmap="tab10", alpha=0.3, vmin=0, vmax=9)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=12, edgecolors="k",
               linewidths=0.3)
    ax.set_title(f"spiral, {model.n_outputs} classes: decision regions of {model.layer_sizes}")
    ax.set_aspect("equal")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"decision boundary saved to {path}")
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    X, y = nn.data.spiral(n_per_class=args.points, n_classes=args.classes, noise=args.noise,
                          seed=args.seed)
    # Stratified: every arm is equally represented in the test set.
    X_train, X_test, y_train, y_test = nn.data.train_test_split(
        X, y, test_size=0.25, seed=args.seed, stratify=True)

    # 2 inputs -> hidden ReLU layers -> K softmax outputs (trained with cross-entropy).
    sizes = [2, *args.hidden, args.classes]
    model = nn.MLP(sizes, ["relu"] * len(args.hidden) + ["softmax"], seed=args.seed)
    print(f"spiral: {args.classes} arms, {len(X_train)} train / {len(X_test)} test points; "
          f"network {sizes}; Adam lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs")

    t0 = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=args.epochs, learning_rate=args.lr,
                        batch_size=args.batch_size, optimizer="adam",
                        validation_data=(X_test, y_test))   # also records training accuracy
    seconds = time.perf_counter() - t0

    # A few points of the learning curve: loss and training accuracy per epoch.
    for e in sorted({1, args.epochs // 4, args.epochs // 2, args.epochs} - {0}):
        print(f"  epoch {e:>4}: loss {history[e - 1]:.4f}, "
              f"train accuracy {history.train_accuracy[e - 1]:.3f}")

    # For comparison: the best a purely linear softmax classifier can do on the same data.
    linear = nn.MLP([2, args.classes], ["softmax"], seed=args.seed)
    linear.fit(X_train, y_train, epochs=args.epochs, learning_rate=args.lr,
               batch_size=args.batch_size, optimizer="adam")

    train_acc = model.score(X_train, y_train)
    test_acc = model.score(X_test, y_test)
    print(f"\nlinear classifier (no hidden layer): test accuracy {linear.score(X_test, y_test):.3f}")
    print(f"MLP {sizes}: train accuracy {train_acc:.3f}, test accuracy {test_acc:.3f} "
          f"(trained in {seconds:.2f} s)")

    if args.plot:
        save_decision_boundary(model, X, y, args.plot)

    if test_acc >= args.target:
        print(f"SUCCESS: test accuracy {test_acc:.3f} >= {args.target}")
        return 0
    print(f"FAILURE: test accuracy {test_acc:.3f} < {args.target}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
