"""Forward + backward of the SwiGLU feed-forward block, three ways: nn.SwiGLU, numpy, PyTorch.

FFN(x) = (SiLU(x W1ᵀ) ⊙ (x W3ᵀ)) W2ᵀ, no biases, d_model=256, d_hidden=688 (≈ 2.7 d_model,
the LLaMA ratio 8/3 rounded to a multiple of 16), float32; x of shape (batch, seq, d_model)
with batch×seq = 64 (4×16) and 1024 (8×128). One step: forward, backward with a fixed
upstream gradient dY, and every gradient (dW1, dW3, dW2 and dx) computed:

  graph   nn.SwiGLU on tinygraph: zero_grad(); y = m(X); y.backward(dY)
  numpy   the same math written out by hand in this script (numpy_step below): 3 matmuls
          forward, 6 backward, SiLU and its derivative with one exp
  torch   PyTorch eager on CPU: F.silu(x @ W1ᵀ) * (x @ W3ᵀ) through F.linear, y.backward(dY),
          as many threads as numpy's BLAS (skipped when PyTorch is not installed)

All three start from the same weights; their gradients are compared before timing. Each is
timed in rounds with the others (shuffled order) (median of samples; each sample a loop of steps lasting
>= --min-time seconds); the best sample (min) is printed beside the median.
FLOPs of a step: 18·N·d_model·d_hidden (3 matmuls of 2·N·d·h forward, 6 backward).

Run:  python benchmarks/swiglu.py [--repeat 7] [--min-time 0.1] [--rows 64,1024] [--threads N]
"""
from __future__ import annotations

import argparse

import _common as C
from _common import np, torch

import nn
import tinygraph as tg

D_MODEL, D_HIDDEN = 256, 688
DTYPE = np.float32
SHAPES = {64: (4, 16), 1024: (8, 128)}


def numpy_step(X, W1, W3, W2, dY):
    """Hand-written forward and backward; returns y and the gradients (dx, dW1, dW3, dW2)."""
    d = X.shape[-1]
    x = X.reshape(-1, d)
    dy = dY.reshape(-1, W2.shape[0])
    g = x @ W1.T
    u = x @ W3.T
    s = 1.0 / (1.0 + np.exp(-g))          # σ(g); float32 in, float32 out
    a = g * s                             # SiLU(g)
    h = a * u
    y = h @ W2.T
    dW2 = dy.T @ h
    dh = dy @ W2
    du = dh * a
    dg = dh * u
    dg *= s * (1 + g * (1 - s))           # SiLU'(g)
    dW1 = dg.T @ x
    dW3 = du.T @ x
    dx = dg @ W1
    dx += du @ W3
    return y.reshape(X.shape[:-1] + (W2.shape[0],)), dx.reshape(X.shape), dW1, dW3, dW2


def build(rows: int) -> tuple[dict, dict]:
    shape = SHAPES.get(rows, (1, rows)) + (D_MODEL,)
    rng = np.random.default_rng(rows)
    X = rng.standard_normal(shape).astype(DTYPE)
    dY = rng.standard_normal(shape).astype(DTYPE)
    m = nn.SwiGLU(D_MODEL, D_HIDDEN, rng=0, dtype=DTYPE)
    W1, W3, W2 = m.w1.W.data, m.w3.W.data, m.w2.W.data
    Xt = tg.Tensor(X, requires_grad=True)

    def graph_step():
        m.zero_grad()
        Xt.grad = None
        m(Xt).backward(dY)

    out = {}

    def numpy_run():
        out["numpy"] = numpy_step(X, W1, W3, W2, dY)

    fns = {"graph": graph_step, "numpy": numpy_run}
    objs = {"graph": m, "Xt": Xt, "out": out, "X": X, "dY": dY}
    if torch is not None:
        F = torch.nn.functional
        tW = [torch.from_numpy(w.copy()).requires_grad_() for w in (W1, W3, W2)]
        tX = torch.from_numpy(X.copy()).requires_grad_()
        tdY = torch.from_numpy(dY)

        def torch_step():
            for t in (*tW, tX):
                t.grad = None
            y = F.linear(F.silu(F.linear(tX, tW[0])) * F.linear(tX, tW[1]), tW[2])
            y.backward(tdY)

        fns["torch"] = torch_step
        objs["torch"] = (tX, tW)
    return fns, objs


def check(fns: dict, o: dict) -> float:
    """Run each step once; max relative difference of the gradients against numpy's."""
    for f in fns.values():
        f()
    _, dx, dW1, dW3, dW2 = o["out"]["numpy"]
    ref = [dx, dW1, dW3, dW2]
    m = o["graph"]
    got = {"graph": [o["Xt"].grad, m.w1.W.grad, m.w3.W.grad, m.w2.W.grad]}
    if "torch" in o:
        tX, tW = o["torch"]
        got["torch"] = [t.grad.numpy() for t in (tX, *tW)]
    worst = 0.0
    for name, grads in got.items():
        for a, b in zip(grads, ref):
            assert a.dtype == DTYPE, (name, a.dtype)
            worst = max(worst, float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=C.positive_int, default=7, help="samples per contender (default 7)")
    ap.add_argument("--min-time", type=C.seconds, default=0.1,
                    help="seconds per sample, at least (default 0.1)")
    ap.add_argument("--rows", type=C.positive_ints, default="64,1024", help="batch×seq values (default 64,1024)")
    C.add_thread_arg(ap)
    args = ap.parse_args()
    rows_list = args.rows

    C.machine_info(f"SwiGLU forward+backward, d_model={D_MODEL}, d_hidden={D_HIDDEN}, float32 "
                   f"(benchmarks/swiglu.py)", args.threads)

    results, diffs = {}, {}
    for rows in rows_list:
        fns, objs = build(rows)
        diffs[rows] = check(fns, objs)
        assert diffs[rows] < 1e-4, f"gradients differ ({diffs[rows]:.2e}) for {rows} rows"
        results[rows] = C.compare(fns, repeat=args.repeat, min_time=args.min_time)
    print("gradients (dx, dW1, dW3, dW2) agree with the numpy version: max relative difference "
          + ", ".join(f"{diffs[r]:.1e} ({r} rows)" for r in rows_list)
          + ("" if torch is None else ", PyTorch included") + "; all float32\n")

    names = ["graph", "numpy"] + (["torch"] if torch is not None else [])

    def shape_label(r):
        b, s = SHAPES.get(r, (1, r))
        return f"{r} ({b}x{s})"

    rows = []
    for r, t in results.items():
        fl = 18 * r * D_MODEL * D_HIDDEN
        row = [shape_label(r)]
        row += [f"{t[n].median * 1e3:.3f}" for n in names]
        row += [f"{t[n].min * 1e3:.3f}" for n in names]
        row += [f"{fl / t[n].median / 1e9:.1f}" for n in names]
        noise = max(t[n].median / t[n].min for n in names)
        row.append(f"{noise:.2f}" + (" disturbed" if noise > 1.15 else ""))
        rows.append(row)
    C.print_table(["batch×seq"] + [f"{n} ms" for n in names] + [f"{n} min" for n in names]
                  + [f"{n} GFLOP/s" for n in names] + ["median/min"], rows,
                  title=f"milliseconds per forward+backward (median and min of {args.repeat} "
                        f"samples)")

    rows = []
    for r, t in results.items():
        row = [shape_label(r)]
        for which in ("median", "min"):
            row.append(C.fmt_ratio(getattr(t["graph"], which) / getattr(t["numpy"], which)))
        if torch is not None:
            for which in ("median", "min"):
                row.append(C.fmt_ratio(getattr(t["graph"], which) / getattr(t["torch"], which)))
            row.append(C.fmt_ratio(t["numpy"].median / t["torch"].median))
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    C.print_table(["batch×seq", "graph/numpy", "(min)", "graph/torch", "(min)", "numpy/torch"],
                  rows, title="ratios of times (below 1: the first named is faster)")
    if torch is None:
        print(f"torch columns: {C.TORCH_SKIPPED}\n")
    C.load_warning()


if __name__ == "__main__":
    main()
