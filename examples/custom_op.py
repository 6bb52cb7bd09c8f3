"""Writing your own tinygraph op: Softplus, checked with gradcheck, used inside a model.

What it shows
-------------
* The ``tinygraph.Function`` contract: a subclass with two static methods,
  ``forward(ctx, *arrays)`` (numpy in, numpy out; ``ctx.save_for_backward(...)`` keeps
  what backward needs) and ``backward(ctx, grad_output)`` (dL/d(output) in, one
  dL/d(input) per input out). ``Softplus.apply(x)`` runs it on Tensors and records one
  node in the graph. Both compute new arrays: what they are given may be read again by
  other nodes and can be read-only (``y = 2 * x``, not ``x *= 2``); one op, one output.
* ``tinygraph.gradcheck`` compares that backward with central finite differences; it
  passes for the correct op and fails (and says where) for a deliberately buggy one.
* The op wrapped in an ``nn.Module`` and used as the hidden activation of a tiny
  network (Linear -> Softplus -> Linear) fitted to y = sin(x) with ``nn.Adam``.

Softplus is a smooth ReLU: softplus(x) = log(1 + e^x), and its derivative is the
logistic sigmoid: d/dx softplus(x) = 1 / (1 + e^-x).

Run it (from the repository root; ``pip install -e .`` or ``export PYTHONPATH=$PWD``)
-------------------------------------------------------------------------------------
    python examples/custom_op.py            # 2000 training steps, ~1 s
    python examples/custom_op.py --quick    # 200 steps

Exits with status 1 if gradcheck does not pass for Softplus, does not fail for the
buggy op, or the tiny model does not learn (final loss above 0.01; predicting 0
everywhere would give 0.25).
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

import nn
import tinygraph as tg


# --- 1. The op -------------------------------------------------------------------------

def _sigmoid(x):
    """1 / (1 + e^-x) computed as exp(-softplus(-x)): no overflow, and accurate even for
    very negative x, where the naive formula and 0.5 * (1 + tanh(x/2)) lose digits."""
    return np.exp(-np.logaddexp(0.0, -x))


class Softplus(tg.Function):
    """y = log(1 + e^x), dy/dx = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        # logaddexp(0, x) = log(e^0 + e^x) without overflow for large x.
        ctx.save_for_backward(x)        # backward needs the input to compute sigmoid(x)
        return np.logaddexp(0.0, x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # Chain rule: dL/dx = dL/dy * dy/dx, elementwise.
        return grad_output * _sigmoid(x)


def softplus(x):
    """The public function: Tensors in, a Tensor (with one new graph node) out."""
    return Softplus.apply(x)


class SoftplusForgotChainRule(tg.Function):
    """A deliberately WRONG op: backward returns dy/dx but forgets to multiply by
    grad_output. It looks right when y is the final loss (grad_output = 1), which is
    exactly why it is a common bug; gradcheck weighs the outputs randomly and catches it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.logaddexp(0.0, x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return _sigmoid(x)              # BUG: should be grad_output * _sigmoid(x)


# --- 2. The op as a layer --------------------------------------------------------------

class SoftplusLayer(nn.Module):
    """A Module with no parameters whose forward is the custom op."""

    def forward(self, x):
        return softplus(x)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer training steps")
    p.add_argument("--steps", type=int, default=None, help="default 2000 (200 with --quick)")
    p.add_argument("--hidden", type=int, default=16, help="hidden width (default 16)")
    p.add_argument("--lr", type=float, default=0.03, help="Adam learning rate (default 0.03)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 200 if args.quick else 2000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checks = []

    # --- Using the op: forward values and the gradient from backward() ---------------
    x = tg.Tensor([-30.0, -1.0, 0.0, 1.0, 30.0], requires_grad=True)
    y = softplus(x)
    y.sum().backward()                  # dL/dy = 1 for every element, so x.grad = sigmoid(x)
    print("x                 ", np.array2string(x.data, precision=4))
    print("softplus(x)       ", np.array2string(y.data, precision=4))
    print("x.grad (backward) ", np.array2string(x.grad, precision=4))
    print("sigmoid(x)        ", np.array2string(1 / (1 + np.exp(-x.data)), precision=4))
    print(f"graph node: {y.grad_fn}")

    # --- gradcheck: analytic backward vs central finite differences -------------------
    rng = np.random.default_rng(args.seed)
    x_check = rng.normal(0.0, 3.0, size=(4, 5))     # a plain array: gradcheck makes the tensors
    result = tg.gradcheck(softplus, [x_check])
    print(f"\nSoftplus alone:                 {result}")
    checks.append(("gradcheck passes for Softplus", result.ok))

    # Inside a composite function: gradcheck checks every input (x, W and b here), so
    # the chain rule through the matmul and our op is verified at once.
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    result = tg.gradcheck(lambda x, W, b: softplus(tg.linear(x, W, b)), [x_check, W, b])
    print(f"softplus(x W^T + b), 3 inputs: {result}")
    checks.append(("gradcheck passes for softplus(linear)", result.ok))

    # The buggy op must FAIL: this is what gradcheck is for.
    result = tg.gradcheck(SoftplusForgotChainRule.apply, [x_check])
    print(f"\nbuggy op (forgot grad_output):  {result}")
    checks.append(("gradcheck catches the buggy op", not result.ok))

    # --- A tiny model with the custom op as its hidden activation --------------------
    # 1 -> hidden (softplus) -> 1, fitted to y = sin(x) by full-batch Adam on the spec's
    # MSE loss (1/2n) sum (a - y)^2. Softplus is a smooth ReLU, so He initialisation suits.
    X, Y = nn.data.sine(n_samples=200, seed=args.seed)
    init_rng = np.random.default_rng(args.seed)
    model = nn.Sequential(nn.Linear(1, args.hidden, init="he", rng=init_rng),
                          SoftplusLayer(),
                          nn.Linear(args.hidden, 1, init="he", rng=init_rng))
    loss_fn = nn.MSELoss()
    opt = nn.Adam(model.parameters(), lr=args.lr)
    print(f"\ntiny model: {model}")
    losses = []
    for step in range(args.steps):
        opt.zero_grad()
        loss = loss_fn(model(tg.Tensor(X)), Y)    # forward: Softplus nodes in the graph
        loss.backward()                           # backward: calls Softplus.backward
        opt.step()
        losses.append(loss.item())
        if step in (0, args.steps // 4, args.steps // 2) or step == args.steps - 1:
            print(f"  step {step + 1:>5}: loss {losses[-1]:.3g}")
    print(f"loss went from {losses[0]:.3g} to {losses[-1]:.3g} in {args.steps} steps "
          f"(predicting 0 everywhere: 0.25)")
    checks.append(("the tiny model learns (final loss < 0.01)", losses[-1] < 0.01))

    print("\nsummary")
    for text, passed in checks:
        print(f"  [{'PASS' if passed else 'FAIL'}] {text}")
    if all(passed for _, passed in checks):
        print("SUCCESS: the custom op passes gradcheck and trains inside a model")
        return 0
    print("FAILURE")
    return 1


if __name__ == "__main__":
    warnings.simplefilter("default")    # show gradcheck's warnings (e.g. near a kink)
    sys.exit(main())
