"""Cross-checking hand-derived backprop against autodiff, and watching it catch a bug.

This is the heart of the project for a learner. ``nn.manual.MLP`` computes every
gradient with formulas derived by hand (delta^(L) = (a - Y)/n, dW = delta^T a_prev,
db = sum_rows delta, delta^(l) = (delta^(l+1) W^(l+1)) * f'(z^(l))). ``nn.crosscheck``
copies its weights into ``nn.MLP`` (the same network as tinygraph nodes, gradients by
reverse-mode autodiff), runs both backward passes on one batch, and prints one row per
parameter:

    max |manual-auto|   the largest absolute difference between the two gradients
    max rel diff        the spec's |a - b| / (|a| + |b| + 1e-8), worst element
    numerical           autodiff vs central finite differences on a few elements
    status              ok, or MISMATCH when either check fails

The script runs three experiments on the same weights and batch:

1. the correct manual MLP: every row ok (differences ~1e-16 or exactly 0);
2. one layer broken on purpose (its dW and db divided by n a second time, a classic slip
   when the 1/n is already inside delta): only THAT layer's rows turn to MISMATCH;
3. the 1/n forgotten in delta^(L) at the output: EVERY row turns to MISMATCH, because
   the output error flows down through all the layers below.

Run it (from the repository root; ``pip install -e .`` or ``export PYTHONPATH=$PWD``)
-------------------------------------------------------------------------------------
    python examples/crosscheck.py                  # the spec's [784, 256, 128, 10]
    python examples/crosscheck.py --break-layer 1  # break the first layer instead
    python examples/crosscheck.py --quick          # a smaller [64, 32, 16, 10]

Exits with status 1 if any of the three experiments does not come out as described.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import nn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smaller network [64, 32, 16, 10]")
    p.add_argument("--batch-size", type=int, default=32, help="rows in the batch (default 32)")
    p.add_argument("--break-layer", type=int, default=2,
                   help="which layer l (1-based, as in the spec) to break (default 2)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.sizes = [64, 32, 16, 10] if args.quick else [784, 256, 128, 10]
    n_layers = len(args.sizes) - 1
    if not 1 <= args.break_layer <= n_layers:
        p.error(f"--break-layer must be between 1 and {n_layers}")
    if args.batch_size < 2:
        p.error("--batch-size must be at least 2: with n = 1, dividing by n or forgetting "
                "1/n changes nothing, so the two bugs below would be invisible")
    return args


def build(args: argparse.Namespace) -> nn.manual.MLP:
    """A fresh manual MLP: same seed, so every experiment starts from the same weights."""
    return nn.manual.MLP(args.sizes, ["relu", "relu", "softmax"], seed=args.seed)


# --- Two deliberate bugs ---------------------------------------------------------------
# Both replace ``backward`` on ONE object only (an instance attribute shadows the class
# method), so the rest of the network keeps its correct code.

def divide_by_n_twice(layer: nn.manual.Layer) -> None:
    """Bug 1, local to one layer: dW and db are divided by the batch size a second time.

    The 1/n of the mean loss is already inside delta (delta^(L) = (a - Y)/n, and every
    delta below inherits it). A learner who reads "dW = (1/B) delta^T a" and divides again
    gets this layer's dW and db n times too small. The gradient the layer passes DOWN
    (delta W) is untouched, so the layers below stay correct.
    """
    correct_backward = layer.backward

    def buggy_backward(delta, compute_input_grad=True):
        grad_input = correct_backward(delta, compute_input_grad)
        n = delta.shape[0]
        layer.dW = layer.dW / n          # BUG: the 1/n is already in delta
        layer.db = layer.db / n          # BUG
        return grad_input

    layer.backward = buggy_backward


def forget_one_over_n(output_layer: nn.manual.Layer) -> None:
    """Bug 2, at the output: delta^(L) = (a - Y) instead of (a - Y)/n.

    Done by multiplying the correct delta^(L) by n as it enters the output layer. The
    output layer's dW, db are n times too large, and so is delta W, which every layer
    below builds its own delta from: the mistake spreads through the whole network.
    """
    correct_backward = output_layer.backward

    def buggy_backward(delta, compute_input_grad=True):
        n = delta.shape[0]
        return correct_backward(delta * n, compute_input_grad)   # BUG: lost the 1/n

    output_layer.backward = buggy_backward


# --- Reading the report ----------------------------------------------------------------

def show(title: str, report: nn.CrosscheckReport) -> set[int]:
    """Print the report (MISMATCH rows in red on a terminal); return the bad layers' l."""
    print(f"\n=== {title} ===")
    red = sys.stdout.isatty()
    for line in str(report).splitlines():
        print(f"\033[31m{line}\033[0m" if red and line.endswith("MISMATCH") else line)
    bad = {r.layer for r in report.rows
           if r.max_rel_diff > report.tol or r.numerical_rel_error > report.numerical_tol}
    print(f"-> layers with a MISMATCH: {sorted(bad) if bad else 'none'}")
    return bad


def numerical_ok(report: nn.CrosscheckReport) -> bool:
    """The finite-difference column checks autodiff, which no bug here touches."""
    return all(r.numerical_rel_error <= report.numerical_tol for r in report.rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    all_layers = set(range(1, len(args.sizes)))
    rng = np.random.default_rng(args.seed)
    # Any batch will do for a gradient check: random "images" in [0, 1] and random labels.
    X = rng.uniform(0.0, 1.0, size=(args.batch_size, args.sizes[0]))
    y = rng.integers(0, args.sizes[-1], size=args.batch_size)
    print(f"network {args.sizes} (ReLU, ReLU, softmax + cross-entropy), float64, "
          f"batch of {args.batch_size}")
    print("note: rows are named by the graph model's parameters: layers.0 is W^(1)/b^(1), "
          "layers.2 is W^(2)/b^(2), ... (the activation nodes take the odd indices)")
    checks = []

    # 1. The correct implementation. What to look for: every status "ok", the loss of
    #    both models identical, differences at rounding level (1e-16) or exactly zero.
    bad = show("1. correct manual backprop", nn.crosscheck(build(args), X, y))
    checks.append(("correct code: all rows ok", bad == set()))

    # 2. Break one layer. What to look for: only the rows of layer l turn MISMATCH, with a
    #    relative difference of (n-1)/(n+1), since the manual value is n times smaller;
    #    the losses still agree (the forward pass is fine); the "numerical" column stays
    #    small because it checks autodiff, the trusted reference. A mismatch confined to
    #    one layer points at that layer's own dW/db formulas.
    l = args.break_layer
    model = build(args)
    divide_by_n_twice(model.layers[l - 1])
    report = nn.crosscheck(model, X, y)
    bad = show(f"2. layer {l}'s dW and db divided by n twice", report)
    checks.append((f"layer-{l} bug: exactly layer {l} mismatches",
                   bad == {l} and numerical_ok(report)))

    # 3. Forget the 1/n at the output. What to look for: every layer mismatches by the
    #    same factor. When all layers below some point are wrong, look at the top-most
    #    wrong layer: the error enters there and is carried down by delta.
    model = build(args)
    forget_one_over_n(model.layers[-1])
    report = nn.crosscheck(model, X, y)
    bad = show("3. the 1/n forgotten in delta^(L)", report)
    checks.append(("output bug: every layer mismatches", bad == all_layers and numerical_ok(report)))

    print("\nsummary")
    for text, passed in checks:
        print(f"  [{'PASS' if passed else 'FAIL'}] {text}")
    if all(passed for _, passed in checks):
        print("SUCCESS: the cross-check agrees on correct code and pinpoints both bugs")
        return 0
    print("FAILURE: the cross-check did not behave as described")
    return 1


if __name__ == "__main__":
    sys.exit(main())
