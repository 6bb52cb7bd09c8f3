"""Regression with an MLP: fit y = sin(x) on [-pi, pi] with a linear output and MSE.

What it shows
-------------
* A regression network: the output layer has no activation (``None`` = linear), so
  ``nn.MLP`` trains it with the spec's MSE loss L = (1/2n) sum ||a - y||^2, whose
  output error is simply delta = (a - y) / n.
* Smooth hidden activations (tanh, with Xavier initialisation) give a smooth fit;
  try ``--activation relu`` to see a piecewise-linear approximation instead.
* The training loss printed by ``fit`` carries the spec's 1/2; the "test MSE" below is
  the plain mean squared error mean((prediction - sin(x))^2) on a fresh, evenly
  spaced grid of x values the network never saw.

Run it (from the repository root; ``pip install -e .`` or ``export PYTHONPATH=$PWD``)
-------------------------------------------------------------------------------------
    python examples/sine_regression.py                 # 300 epochs, ~1 s
    python examples/sine_regression.py --noise 0.1    # noisy targets
    python examples/sine_regression.py --activation relu
    python examples/sine_regression.py --quick

Exits with status 1 if the test MSE is above ``--target`` (default 0.01).
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
    p.add_argument("--samples", type=int, default=400, help="training points (default 400)")
    p.add_argument("--noise", type=float, default=0.0, help="std of noise added to y (default 0)")
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32],
                   help="hidden layer widths (default 32 32)")
    p.add_argument("--activation", default="tanh", help="hidden activation (default tanh)")
    p.add_argument("--epochs", type=int, default=None, help="default 300 (40 with --quick)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=0.01,
                   help="largest test MSE that counts as success (default 0.01)")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 40 if args.quick else 300
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    # Training data: x uniform in [-pi, pi), y = sin(x) (+ noise). Shapes (n, 1) and (n, 1).
    X, y = nn.data.sine(n_samples=args.samples, noise=args.noise, seed=args.seed)
    # Test data: an even grid, noise-free, so the MSE measures the fit to sin itself.
    X_test = np.linspace(-np.pi, np.pi, 201).reshape(-1, 1)
    y_test = np.sin(X_test)

    # 1 input -> hidden layers -> 1 linear output (activation None => MSE loss).
    # Xavier suits tanh/sigmoid; He suits ReLU-like activations.
    sizes = [1, *args.hidden, 1]
    init = "he" if args.activation.lower() in ("relu", "leaky_relu") else "xavier"
    model = nn.MLP(sizes, [args.activation] * len(args.hidden) + [None], init_method=init,
                   seed=args.seed)
    print(f"sine regression: {args.samples} points, noise {args.noise}; network {sizes} "
          f"({args.activation}, linear output, {init} init); Adam lr {args.lr}, "
          f"batch {args.batch_size}, {args.epochs} epochs")

    t0 = time.perf_counter()
    history = model.fit(X, y, epochs=args.epochs, learning_rate=args.lr,
                        batch_size=args.batch_size, optimizer="adam")
    seconds = time.perf_counter() - t0

    # predict() on a regression model returns the raw output a^(L), shape (n, 1).
    pred = model.predict(X_test)
    test_mse = float(np.mean((pred - y_test) ** 2))

    print(f"\ntraining loss (1/2n sum of squares): epoch 1 {history[0]:.5f} -> "
          f"epoch {args.epochs} {history[-1]:.6f}")
    print("\n      x    sin(x)  prediction     error")
    for i in np.linspace(0, len(X_test) - 1, 9).astype(int):
        x, t, p = X_test[i, 0], y_test[i, 0], pred[i, 0]
        print(f"{x:7.3f}  {t:8.4f}  {p:10.4f}  {p - t:+8.4f}")
    print(f"\nfinal training loss {history[-1]:.6f}; test MSE {test_mse:.6f} "
          f"on {len(X_test)} grid points (trained in {seconds:.2f} s)")

    if test_mse <= args.target:
        print(f"SUCCESS: test MSE {test_mse:.6f} <= {args.target}")
        return 0
    print(f"FAILURE: test MSE {test_mse:.6f} > {args.target}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
