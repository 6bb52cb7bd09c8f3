"""XOR, the spec's smallest test of backprop, solved twice: by hand and by autodiff.

What it shows
-------------
* The spec's network 2 -> 4 ReLU -> 1 sigmoid (binary cross-entropy loss) learns XOR,
  the simplest problem a linear model cannot solve.
* It is trained twice from the same seed: once with ``nn.manual.MLP`` (every gradient
  derived by hand and written in numpy) and once with ``nn.MLP`` (the same network built
  from tinygraph nodes, gradients by reverse-mode autodiff).
* Same seed -> same initial weights, and (full-batch gradient descent) the same updates,
  so the two loss curves should agree to rounding error (~1e-16) at every epoch. If they
  did not, one of the two backward passes would be wrong.

Run it
------
    python examples/xor.py            # 2000 epochs (about 2 s)
    python examples/xor.py --quick    # 300 epochs
    python examples/xor.py --seed 3   # a seed where 4 ReLUs are not enough (see below)

With only 4 hidden ReLU units a few seeds start with units that are "dead" on all four
inputs (z < 0 everywhere, so no gradient flows through them) and training stalls at 3/4.
Both implementations then fail in exactly the same way, which is itself a nice check.
The script exits with status 1 if either model gets an answer wrong or the curves differ.
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
    p.add_argument("--epochs", type=int, default=None, help="default 2000 (300 with --quick)")
    p.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 300 if args.quick else 2000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    X, y = nn.data.xor()          # X: (4, 2) rows 00, 01, 10, 11; y: [0, 1, 1, 0]

    # The spec's XOR architecture. A Sigmoid output makes both models use binary
    # cross-entropy, whose delta at the output is simply (a - y) / n.
    sizes, acts = [2, 4, 1], ["relu", "sigmoid"]
    manual = nn.manual.MLP(sizes, acts, seed=args.seed)
    graph = nn.MLP(sizes, acts, seed=args.seed)

    # Same seed, same draws, layer by layer: the starting weights are identical.
    init_diff = max(float(np.abs(layer.W - lin.W.data).max())
                    for layer, lin in zip(manual.layers, graph.linears))
    print(f"XOR with the spec's network {sizes} (ReLU, sigmoid), seed {args.seed}, "
          f"lr {args.lr}, {args.epochs} epochs of full-batch gradient descent")
    print(f"initial weights: max |manual - graph| = {init_diff:.1e}")

    # batch_size=None is full-batch gradient descent: no shuffling, one update per epoch.
    t0 = time.perf_counter()
    manual_losses = manual.fit(X, y, epochs=args.epochs, learning_rate=args.lr)
    t_manual = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph_losses = graph.fit(X, y, epochs=args.epochs, learning_rate=args.lr)
    t_graph = time.perf_counter() - t0

    # The two loss curves, side by side at a few epochs.
    print("\nloss curves (binary cross-entropy)")
    print(f"{'epoch':>7}  {'manual':>12}  {'graph':>12}  {'|difference|':>12}")
    shown = sorted({1, 10, 100, args.epochs // 2, args.epochs} & set(range(1, args.epochs + 1)))
    for e in shown:
        a, b = manual_losses[e - 1], graph_losses[e - 1]
        print(f"{e:>7}  {a:>12.6f}  {b:>12.6f}  {abs(a - b):>12.1e}")
    curve_diff = float(np.max(np.abs(np.array(manual_losses) - np.array(graph_losses))))
    curves_agree = curve_diff < 1e-9
    print(f"largest difference over all {args.epochs} epochs: {curve_diff:.1e} "
          f"({'the curves agree' if curves_agree else 'the curves DIFFER'})")

    # Predictions: probability of class 1, thresholded at 0.5.
    p_manual = manual.predict_proba(X)[:, 0]
    p_graph = graph.predict_proba(X)[:, 0]
    print("\n x1 x2  target   p(manual)   p(graph)  predicted")
    for (x1, x2), t, pm, pg, pred in zip(X, y, p_manual, p_graph, graph.predict(X)):
        mark = "ok" if pred == t else "WRONG"
        print(f" {x1:2.0f} {x2:2.0f}  {t:6d}   {pm:9.4f}  {pg:9.4f}  {pred:9d}  {mark}")

    n_manual = int(np.sum(manual.predict(X) == y))
    n_graph = int(np.sum(graph.predict(X) == y))
    print(f"\nmanual MLP: {n_manual}/4 correct  (trained in {t_manual:.2f} s)")
    print(f"graph  MLP: {n_graph}/4 correct  (trained in {t_graph:.2f} s)")
    ok = n_manual == 4 and n_graph == 4 and curves_agree
    if ok:
        print(f"SUCCESS: XOR solved, 4/4 correct with both MLPs; loss curves agree "
              f"(max difference {curve_diff:.1e})")
        return 0
    print("FAILURE: " + ("the loss curves differ, so one backward pass is wrong"
                         if not curves_agree else
                         "XOR not solved (try another --seed or more --epochs)"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
