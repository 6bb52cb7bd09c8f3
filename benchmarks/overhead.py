"""Per-node cost of the engine: chains of tiny elementwise ops, forward plus backward.

A chain of N nodes on a 4-element float64 array (``y = op(y)`` N times, then
``y.backward(ones)``), for the op kinds ``x * c``, ``x + c``, ``tanh`` (nothing saved but a
Python number, or the output), ``x * w`` (w a constant 4-element array, which the node saves
and protects until backward, as a layer saves its weights) and a mix of the first three. On arrays this small the arithmetic costs almost nothing, so the time per node is the
engine's bookkeeping: recording the node in forward, scheduling and running it in backward.

Columns (microseconds per node, median over samples):
  fwd+bwd      tinygraph forward (recording) + backward
  fwd, bwd     the two halves of that
  fwd no_grad  tinygraph forward under no_grad (the Tensor/op wrapper without recording)
  numpy fwd    the same ops on plain numpy arrays: the arithmetic alone
  bare f+b     a minimal reverse-mode engine on numpy (benchmarks/_bare_engine.py: one
               object and one closure per node, no checks, no protection of saved arrays),
               forward + backward: about the least a general graph engine in Python pays
  torch ...    PyTorch eager, float64, same chain (when installed)
Target (the issue): fwd+bwd <= 3 us per node.

Run:  python benchmarks/overhead.py [--nodes 1000] [--repeat 25]
"""
from __future__ import annotations

import argparse
import gc
import time

import _bare_engine as bare
import _common as C
from _common import np, torch

import tinygraph as tg

TARGET_US = 3.0
C_MUL = 1.0001
C_ADD = 0.001

W_CONST = np.array([1.0001, 0.9999, 1.0002, 0.9998])

KINDS = ("x * c", "x + c", "tanh", "x * w", "mix")


def _ops(kind, tanh, w=W_CONST):
    """The ops of a chain kind for one library, given how it spells tanh and the array w."""
    mul, add, mul_w = (lambda y: y * C_MUL), (lambda y: y + C_ADD), (lambda y: y * w)
    return {"x * c": [mul], "x + c": [add], "tanh": [tanh], "x * w": [mul_w],
            "mix": [mul, add, tanh]}[kind]


def _sequence(ops, n):
    """The n ops of the chain, in order (a mix cycles through its ops)."""
    return [ops[i % len(ops)] for i in range(n)]


def chain_sample(make_leaf, seq, g, check=None):
    """(forward seconds, backward seconds) of one chain: ``make_leaf()`` (timed with the
    forward), the ops of ``seq``, then backward from the end with ``g``. Appends the leaf's
    gradient to ``check`` when given."""
    t0 = time.perf_counter()
    x = make_leaf()
    y = x
    for op in seq:
        y = op(y)
    t1 = time.perf_counter()
    y.backward(g)
    t2 = time.perf_counter()
    assert x.grad is not None
    if check is not None:
        check.append(x.grad)
    return t1 - t0, t2 - t1


def tg_nograd_sample(seq, x0):
    t0 = time.perf_counter()
    with tg.no_grad():
        y = tg.Tensor(x0)
        for op in seq:
            y = op(y)
    return time.perf_counter() - t0


def np_sample(seq, x0):
    t0 = time.perf_counter()
    y = x0
    for op in seq:
        y = op(y)
    return time.perf_counter() - t0


def measure(n: int, repeat: int, gc_enabled: bool = True) -> dict:
    """Per-node microseconds of every column, for every kind."""
    x0 = np.random.default_rng(0).uniform(-1, 1, 4)
    g = np.ones(4)
    w_torch = torch.tensor(W_CONST, dtype=torch.float64) if torch is not None else None
    seqs = {k: (_sequence(_ops(k, tg.tanh), n), _sequence(_ops(k, np.tanh), n),
                _sequence(_ops(k, torch.tanh, w_torch), n) if torch is not None else None,
                _sequence(_ops(k, bare.Value.tanh), n)) for k in KINDS}
    if torch is not None:
        x0t = torch.tensor(x0, dtype=torch.float64)
        gt = torch.ones(4, dtype=torch.float64)
    samples = {k: {"fwd": [], "bwd": [], "tot": [], "nograd": [], "np": [], "bare": [],
                   "t_fwd": [], "t_bwd": [], "t_tot": []} for k in KINDS}
    was_enabled = gc.isenabled()
    try:
        for r in range(repeat + 2):             # the first two rounds are warm-up
            for k in KINDS:
                s_tg, s_np, s_t, s_bare = seqs[k]
                check = [] if r == 0 else None
                gc.collect()
                if not gc_enabled:
                    gc.disable()
                f, b = chain_sample(lambda: tg.Tensor(x0, requires_grad=True), s_tg, g, check)
                bf, bb = chain_sample(lambda: bare.Value(x0), s_bare, g, check)
                ng = tg_nograd_sample(s_tg, x0)
                npf = np_sample(s_np, x0)
                if s_t is not None:
                    tf, tb = chain_sample(lambda: x0t.detach().requires_grad_(True), s_t, gt)
                gc.enable()
                if check is not None:       # the floor computes the same gradient
                    np.testing.assert_allclose(check[1], check[0], rtol=1e-12, atol=0)
                if r < 2:
                    continue
                d = samples[k]
                d["fwd"].append(f)
                d["bwd"].append(b)
                d["tot"].append(f + b)
                d["nograd"].append(ng)
                d["np"].append(npf)
                d["bare"].append(bf + bb)
                if s_t is not None:
                    d["t_fwd"].append(tf)
                    d["t_bwd"].append(tb)
                    d["t_tot"].append(tf + tb)
    finally:
        if was_enabled:
            gc.enable()
    us = 1e6 / n
    out = {}
    for k, d in samples.items():
        out[k] = {name: (C.median(v) * us if v else None) for name, v in d.items()}
        out[k].update({name + "_min": (min(v) * us if v else None) for name, v in d.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=C.positive_int, default=1000, help="nodes per chain (default 1000)")
    ap.add_argument("--repeat", type=C.positive_int, default=25, help="samples per column (default 25)")
    args = ap.parse_args()

    C.machine_info("tinygraph per-node overhead (benchmarks/overhead.py)")
    print(f"chains of {args.nodes} nodes on a 4-element float64 array; median of {args.repeat} "
          f"samples (after 2 warm-up rounds), Python's garbage collector on; "
          f"microseconds per node\n")
    res = measure(args.nodes, args.repeat)

    def f(x):
        return "-" if x is None else f"{x:.2f}"

    rows = []
    for k in KINDS:
        d = res[k]
        rows.append([k, f(d["tot"]), f(d["tot_min"]), f(d["fwd"]), f(d["bwd"]), f(d["nograd"]),
                     f(d["np"]), f(d["bare"]), f(d["t_tot"]), f(d["t_tot_min"]), f(d["t_fwd"]), f(d["t_bwd"]),
                     C.fmt_ratio(d["tot"] / d["t_tot"]) if d["t_tot"] else "-",
                     C.fmt_ratio(d["tot_min"] / d["t_tot_min"]) if d["t_tot"] else "-"])
    C.print_table(["op", "fwd+bwd", "(min)", "fwd", "bwd", "fwd no_grad", "numpy fwd",
                   "bare f+b", "torch f+b", "(min)", "torch fwd", "torch bwd", "tg/torch", "(min)"], rows,
                  title="us per node (tinygraph unless marked; medians, '(min)' = best sample)")
    if torch is None:
        print(f"torch columns: {C.TORCH_SKIPPED}\n")

    # The same chains with the garbage collector off: how much of the cost is GC passes.
    nogc_repeat = max(5, args.repeat // 3)       # (a check, not the main table: fewer samples)
    res_nogc = measure(args.nodes, nogc_repeat, gc_enabled=False)
    rows = [[k, f(res_nogc[k]["tot"]), f(res_nogc[k]["fwd"]), f(res_nogc[k]["bwd"]),
             f(res_nogc[k]["bare"]), f(res_nogc[k]["t_tot"])] for k in KINDS]
    C.print_table(["op", "fwd+bwd", "fwd", "bwd", "bare f+b", "torch f+b"], rows,
                  title=f"the same with gc.disable() during each sample (us per node, median of "
                        f"{nogc_repeat} samples)")

    print(f"target: fwd+bwd <= {TARGET_US:.1f} us per node (median; best sample in brackets)")
    for k in KINDS:
        t, best = res[k]["tot"], res[k]["tot_min"]
        print(f"  {k:<6} {t:5.2f} us ({best:5.2f})  {C.verdict(t, best, TARGET_US)}   "
              f"(bare engine {res[k]['bare']:.2f} us: tinygraph is {t / res[k]['bare']:.2f}x it)")
    print()
    C.load_warning()


if __name__ == "__main__":
    main()
