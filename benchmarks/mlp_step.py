"""One training step of the spec's network, three ways: graph MLP, manual MLP, PyTorch.

Network [784, 256, 128, 10], ReLU hidden layers, softmax cross-entropy, SGD; batch sizes
1, 64 and 1000, float32 and float64. A step is forward, loss, backward and the SGD update:

  graph        nn.MLP (tinygraph autodiff):  opt.zero_grad(); loss = model._loss(X, T);
               loss.backward(); opt.step()       (T: one-hot targets prepared once)
  graph pub    the same through the public API:  loss = model.loss(X, y) (labels checked
               and one-hot encoded every step)
  manual       nn.manual.MLP (hand-written backprop): m._forward(X); m._backward(T); m._step(lr)
  manual pub   m.forward(X); m.backward(y); m.update(lr)   (argument checks, labels -> one-hot)
  torch        PyTorch eager on CPU: nn.Linear/ReLU, CrossEntropyLoss, optim.SGD, the same
               number of threads as numpy's BLAS

All five start from the same weights. Each is timed in rounds with the others (shuffled order) (median of
samples; each sample a loop of steps lasting >= --min-time seconds). The targets are judged
on paired ratios: graph/manual (and graph/torch) from --pairs pairs of blocks of steps
(>= 5 ms each) run back to back, so that both sides of a ratio see the same state of the
machine (with 2 BLAS threads this VM switches between a fast and a slow mode; see
docs/performance.md). Before and after each row a probe times a batch-64-sized matmul with
numpy's threads and with one (``_common.blas_speedup``; needs threadpoolctl): a speedup
below 1.6x marks the row's 2-thread verdicts as taken in the slow phase.

%peak is the step's useful FLOPs per second over the machine's peak matmul throughput in
that dtype (the faster of numpy and PyTorch on a large square matmul, measured in this run).
FLOPs of a step: forward 2·B·Σ n_l n_(l-1); backward twice that, minus the first layer's
dL/dX, which is not needed: 2·B·(3·Σ n_l n_(l-1) − n_0 n_1).

Run:  python benchmarks/mlp_step.py [--repeat 7] [--min-time 0.1] [--pairs 30] [--peak-size 2048]
                                    [--batches 1,64,1000]
                                    [--dtypes float32,float64] [--threads N] [--no-torch]
"""
from __future__ import annotations

import argparse

import _common as C
from _common import np, torch

import nn
import nn.manual
import tinygraph as tg

SIZES = [784, 256, 128, 10]
ACTS = ["relu", "relu", "softmax"]
LR = 1e-3
PEAK_N = 2048
#: The paired ratios taken: (numerator, denominator). PyTorch's step goes through its public
#: API (labels checked by CrossEntropyLoss every step), so the graph is paired with it both
#: as fit() runs it (targets prepared once) and through the public loss(X, y).
PAIRS = (("graph", "manual"), ("graph", "torch"), ("graph pub", "torch"))


def step_flops(batch: int) -> int:
    s = sum(a * b for a, b in zip(SIZES[1:], SIZES[:-1]))
    return 2 * batch * (3 * s - SIZES[0] * SIZES[1])


def peak_flops(dtype, repeat: int, n: int = PEAK_N, min_time: float = 0.2) -> dict:
    """FLOP/s of an n x n matmul with numpy and with PyTorch (.min: best sample)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    fns = {"numpy": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    t = C.compare(fns, repeat=repeat, min_time=min_time, warmup=1)
    flops = 2 * n ** 3
    return {k: C.Stats(flops / v.median, flops / v.min) for k, v in t.items()}


def torch_model(graph: nn.MLP, dtype):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(n_in, n_out, dtype=tdtype))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for lin, tl in zip(graph.linears, [m for m in model if isinstance(m, torch.nn.Linear)]):
            tl.weight.copy_(torch.from_numpy(lin.W.data))
            tl.bias.copy_(torch.from_numpy(lin.b.data))
    return model


def build(batch: int, dtype) -> tuple[dict, dict]:
    """The step functions of every contender, and the objects to check afterwards."""
    rng = np.random.default_rng(batch)
    X = rng.standard_normal((batch, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], batch)

    def graph_model():
        return nn.MLP(SIZES, ACTS, seed=0, dtype=dtype)

    g = graph_model()
    T = g._prepare_targets(y, "benchmark", batch)
    g_opt = nn.SGD(g.parameters(), lr=LR)

    def graph_step():
        g_opt.zero_grad()
        loss = g._loss(X, T)
        loss.backward()
        g_opt.step()

    gp = graph_model()
    gp_opt = nn.SGD(gp.parameters(), lr=LR)

    def graph_public():
        gp_opt.zero_grad()
        loss = gp.loss(X, y)
        loss.backward()
        gp_opt.step()

    m = g.to_manual()

    def manual_step():
        m._forward(X)
        m._backward(T)
        m._step(LR)

    mp = g.to_manual()

    def manual_public():
        mp.forward(X)
        mp.backward(y)
        mp.update(LR)

    fns = {"graph": graph_step, "graph pub": graph_public, "manual": manual_step,
           "manual pub": manual_public}
    objs = {"graph": g, "graph pub": gp, "manual": m, "manual pub": mp, "X": X, "y": y, "T": T}
    if torch is not None:
        tm = torch_model(g, dtype)
        crit = torch.nn.CrossEntropyLoss()
        t_opt = torch.optim.SGD(tm.parameters(), lr=LR)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def torch_step():
            t_opt.zero_grad()
            loss = crit(tm(Xt), yt)
            loss.backward()
            t_opt.step()

        fns["torch"] = torch_step
        objs["torch"] = tm
    return fns, objs


def check_same_gradients(batch: int, dtype) -> float:
    """Max relative difference of the first step's gradients, graph vs manual (vs torch)."""
    fns, o = build(batch, dtype)
    g, m = o["graph"], o["manual"]
    g.zero_grad()
    g._loss(o["X"], o["T"]).backward()
    m._forward(o["X"])
    m._backward(o["T"])
    worst = 0.0
    for lin, layer in zip(g.linears, m.layers):
        for a, b in ((lin.W.grad, layer.dW), (lin.b.grad, layer.db)):
            worst = max(worst, float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)))
    if torch is not None:
        tm = o["torch"]
        loss = torch.nn.CrossEntropyLoss()(tm(torch.from_numpy(o["X"])), torch.from_numpy(o["y"]))
        loss.backward()
        tl = [x for x in tm if isinstance(x, torch.nn.Linear)]
        for lin, t in zip(g.linears, tl):
            for a, b in ((lin.W.grad, t.weight.grad.numpy()), (lin.b.grad, t.bias.grad.numpy())):
                worst = max(worst, float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)))
    return worst


def check_dtypes(objs: dict, dtype) -> None:
    """float32 stays float32: parameters and gradients after the timed steps, the loss, and
    every array a step's graph (or the manual MLP) caches for backward."""
    for key in ("graph", "graph pub"):
        for p in objs[key].parameters():
            assert p.data.dtype == dtype, (key, p.name, p.data.dtype)
            assert p.grad is not None and p.grad.dtype == dtype, (key, p.name, p.grad.dtype)
        loss = objs[key]._loss(objs["X"], objs["T"])
        assert loss.data.dtype == dtype, (key, "loss", loss.data.dtype)
        for node, arr in tg.graph.saved_arrays(loss):
            assert arr.dtype == dtype, (key, node.name, "saved", arr.dtype)
    for key in ("manual", "manual pub"):
        for layer in objs[key].layers:
            for arr in (layer.W, layer.b, layer.dW, layer.db, layer.z, layer.a):
                assert arr.dtype == dtype, (key, arr.dtype)
    if "torch" in objs:
        want = torch.float32 if dtype == np.float32 else torch.float64
        for p in objs["torch"].parameters():
            assert p.grad is not None and p.grad.dtype == want


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=C.positive_int, default=7, help="samples per contender (default 7)")
    ap.add_argument("--min-time", type=C.seconds, default=0.1,
                    help="seconds per sample, at least (default 0.1)")
    ap.add_argument("--peak-size", type=C.positive_int, default=PEAK_N,
                    help=f"side of the square matmul that measures peak FLOP/s (default {PEAK_N}; "
                         f"smaller sizes understate the peak)")
    ap.add_argument("--pairs", type=int, default=30,
                    help="back-to-back block pairs per paired ratio (default 30)")
    ap.add_argument("--batches", type=C.positive_ints, default="1,64,1000",
                    help="batch sizes (default 1,64,1000)")
    ap.add_argument("--dtypes", type=C.float_dtypes, default="float32,float64",
                    help="dtypes: float32, float64 (default both)")
    ap.add_argument("--no-torch", action="store_true",
                    help="leave PyTorch out even when installed (so that its threads cannot "
                         "slow the other contenders)")
    C.add_thread_arg(ap)
    args = ap.parse_args()
    if args.pairs < 2:
        ap.error(f"--pairs must be at least 2 (quartiles need two ratios), got {args.pairs}")
    if args.no_torch:
        global torch
        C.leave_out_torch()
        torch = None
    batches, dtypes = args.batches, args.dtypes

    C.machine_info("one training step of [784, 256, 128, 10] (benchmarks/mlp_step.py)",
                   args.threads)
    # The peak is measured before and after the steps and the better value kept, so that a
    # moment of competition from other processes does not lower it.
    def peak(dt):
        return peak_flops(dt, repeat=5, n=args.peak_size, min_time=2 * args.min_time)

    peak_runs = {dt: [peak(dt)] for dt in dtypes}

    results = {}
    paired = {}
    phase = {}           # multi-thread BLAS speedup probed before and after each row
    for dt in dtypes:
        for b in batches:
            diff = check_same_gradients(b, dt)
            tol = 1e-4 if dt == np.float32 else 1e-9
            assert diff < tol, f"gradients differ ({diff:.2e}) for batch {b} {np.dtype(dt).name}"
            fns, objs = build(b, dt)
            before = C.blas_speedup()
            results[(dt, b)] = C.compare(fns, repeat=args.repeat, min_time=args.min_time)
            paired[(dt, b)] = {(a, o): C.paired_ratio(fns[a], fns[o], pairs=args.pairs)
                               for a, o in PAIRS if o in fns}
            phase[(dt, b)] = (before, C.blas_speedup())
            check_dtypes(objs, dt)
    tolerances = ", ".join(f"{'1e-4' if dt == np.float32 else '1e-9'} in {np.dtype(dt).name}"
                           for dt in dtypes)
    print(f"graph and manual gradients agree on the first step (max relative difference below "
          f"{tolerances}{', PyTorch included' if torch is not None else ''}); "
          f"dtypes asserted after the timed steps\n")

    peaks = {}
    for dt in dtypes:
        peak_runs[dt].append(peak(dt))
        best = {k: max(run[k].min for run in peak_runs[dt]) for k in peak_runs[dt][0]}
        peaks[dt] = max(best.values())
        print(f"peak matmul {np.dtype(dt).name} ({args.peak_size}x{args.peak_size}, best sample before and after "
              f"the steps): " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in best.items()) +
              f"  -> peak {peaks[dt] / 1e9:.1f}")
    print()

    names = ["graph", "graph pub", "manual", "manual pub"] + (["torch"] if torch is not None else [])
    label = {k: f"{np.dtype(k[0]).name} B={k[1]}" for k in results}
    for which in ("median", "min"):
        rows = [[label[k]] + [f"{getattr(t[n], which) * 1e3:.3f}" for n in names]
                for k, t in results.items()]
        headers = ["dtype, batch"] + [f"{n} ms" for n in names]
        if which == "median":      # how far the medians sit above the best samples
            for row, t in zip(rows, results.values()):
                noise = max(t[n].median / t[n].min for n in names)
                row.append(f"{noise:.2f}" + (" disturbed" if noise > 1.15 else ""))
            headers.append("median/min")
        C.print_table(headers, rows,
                      title=f"milliseconds per training step ({which} of {args.repeat} samples)")

    rows = []
    for k, t in results.items():
        fl = step_flops(k[1])
        rows.append([label[k], f"{fl / 1e6:.1f}"] +
                    [f"{100 * fl / t[n].median / peaks[k[0]]:.1f}%" for n in names])
    C.print_table(["dtype, batch", "MFLOP/step"] + names, rows,
                  title="fraction of peak matmul throughput (%peak, from the medians)")

    def r(t, a, b, which):
        return getattr(t[a], which) / getattr(t[b], which)

    rows = []
    for k, t in results.items():
        row = [label[k]]
        for which in ("median", "min"):
            row += [C.fmt_ratio(r(t, "graph", "manual", which))]
        row += [C.fmt_ratio(r(t, "graph pub", "manual pub", "median"))]
        if torch is not None:
            for which in ("median", "min"):
                row += [C.fmt_ratio(r(t, "graph", "torch", which))]
            row += [C.fmt_ratio(r(t, "manual", "torch", "median"))]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    C.print_table(["dtype, batch", "graph/manual", "(min)", "pub graph/manual",
                   "graph/torch", "(min)", "manual/torch"], rows,
                  title="ratios of step times (below 1: the first named is faster)")
    if torch is None:
        print(f"torch columns: {C.TORCH_SKIPPED}\n")

    def fmt_paired(p):
        return "-" if p is None else f"{p.median:.2f}x [{p.q1:.2f}-{p.q3:.2f}]"

    def ms(p, side):
        return "-" if p is None else f"{getattr(p, side) * 1e3:.3f}"

    def fmt_phase(k):
        return "/".join("-" if s is None else f"{s:.2f}x" for s in phase[k])

    def gm(pr):
        return pr.get(("graph", "manual"))

    def gt(pr):
        return pr.get(("graph", "torch"))

    def pt(pr):
        return pr.get(("graph pub", "torch"))

    rows = [[label[k], fmt_paired(gm(pr)), ms(gm(pr), "a"), ms(gm(pr), "b"),
             fmt_paired(gt(pr)), ms(gt(pr), "b"), fmt_paired(pt(pr)), ms(pt(pr), "a"),
             fmt_phase(k)]
            for k, pr in paired.items()]
    C.print_table(["dtype, batch", "graph/manual", "graph ms", "manual ms", "graph/torch",
                   "torch ms", "graph pub/torch", "graph pub ms", "BLAS speedup"], rows,
                  title=f"paired ratios: median [quartiles] of {args.pairs} ratios of blocks "
                        f"timed back to back; ms per step: median inside those blocks")
    probed = any(s is not None for k in phase for s in phase[k])
    print(C.probe_legend(probed, ", before/after the row") + "\n")

    print("targets (paired ratio [quartiles]; ratio of the medians of the samples above, and "
          "of the best samples, in brackets). The verdict reads the paired ratio: with 2 BLAS "
          "threads this VM switches between a fast and a slow mode, which the separately "
          "timed samples can straddle (see docs/performance.md):")
    checks = []      # (text, paired, median ratio, best ratio, limit, slow phase) or (text, why)

    def add(text, key, a, b, limit):
        if key not in results or b not in results[key]:
            checks.append((text, C.TORCH_SKIPPED if b == "torch" and torch is None
                           else "not in this run"))
            return
        t = results[key]
        checks.append((text, paired[key][(a, b)], r(t, a, b, "median"), r(t, a, b, "min"),
                       limit, C.slow_phase(phase[key])))

    f32 = np.float32
    add("float32 B=64: graph <= 1.10x manual", (f32, 64), "graph", "manual", 1.10)
    add("float32 B=64: graph no slower than PyTorch", (f32, 64), "graph", "torch", 1.0)
    add("  the same through the public loss(X, y)", (f32, 64), "graph pub", "torch", 1.0)
    add("float32 B=1000: graph <= 1.05x manual", (f32, 1000), "graph", "manual", 1.05)
    for dt in dtypes:
        add(f"{np.dtype(dt).name} B=1: graph <= 0.5x PyTorch eager", (dt, 1), "graph", "torch", 0.5)
        add("  the same through the public loss(X, y)", (dt, 1), "graph pub", "torch", 0.5)
    for text, *check in checks:
        if len(check) == 1:
            print(f"  {text:<50} not measured ({check[0]})")
            continue
        pair, med, best, limit, slow = check
        status = C.paired_verdict(pair, limit, slow)
        print(f"  {text:<50} {fmt_paired(pair)}  ({med:4.2f}x, {best:4.2f}x)  {status}")
    kept = " and ".join(f"{np.dtype(d).name} stays {np.dtype(d).name}" for d in dtypes)
    print(f"  {kept + ' (params, grads, loss, caches)':<50} asserted  met")
    print()
    C.load_warning()


if __name__ == "__main__":
    main()
