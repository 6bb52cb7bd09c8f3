"""Where the time goes: cProfile of the overhead chain and of the graph MLP's training step,
plus timings of single engine pieces (best of many runs, so a busy machine barely moves them).

  1. a 1000-node chain mixing x*c, x+c and tanh, forward + backward (benchmarks/overhead.py)
  2. one graph-MLP training step, float32, batch 1 and batch 64 (benchmarks/mlp_step.py)
  3. the graph MLP's step against the manual MLP's, float32, batch 1 and 64, by timing
     variants (without node labels, forward only, under no_grad, backward alone, SGD)
  4. micro-timings: an op's apply with and without recording, a node's locks, checks and
     release, the consumer-counting pass, a module call's node labelling

cProfile adds a fixed cost to every Python call, so it inflates small functions: read its
tables for *where* the time goes and the micro-timings for *how much* a piece costs.

Run:  python benchmarks/hotspots.py [--top 15] [--threads T]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import timeit

import _common as C
from _common import np

import nn
import tinygraph as tg


def chain_mix(x0, g, n=1000):
    x = tg.Tensor(x0, requires_grad=True)
    y = x
    for i in range(n):
        k = i % 3
        y = y * 1.0001 if k == 0 else (y + 0.001 if k == 1 else tg.tanh(y))
    y.backward(g)


def mlp_setup(batch, dtype=np.float32):
    model = nn.MLP([784, 256, 128, 10], ["relu", "relu", "softmax"], seed=0, dtype=dtype)
    X = np.random.default_rng(0).standard_normal((batch, 784)).astype(dtype)
    T = model._prepare_targets(np.arange(batch) % 10, "hotspots", batch)
    opt = nn.SGD(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = model._loss(X, T)
        loss.backward()
        opt.step()
    return model, X, T, step


def show_profile(title, fn, calls, top):
    fn()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        fn()
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    st.sort_stats("tottime").print_stats(top)
    text = s.getvalue()
    # keep the table, drop pstats' preamble; shorten the paths
    lines = [ln for ln in text.splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if "ncalls" in ln)
    print(f"-- {title}: {calls} runs, top {top} by own time (tottime)")
    total = next((ln for ln in lines if "function calls" in ln), "").strip()
    print(f"   {total}")
    root = C._ROOT + "/"
    for ln in lines[start:]:
        print("   " + ln.replace(root, ""))
    print()


def best_us(stmt, number, repeat=9, **names):
    return min(timeit.repeat(stmt, number=number, repeat=repeat, globals=names)) / number * 1e6


def micro() -> list:
    from tinygraph.ops.elementwise import Mul, Tanh
    rows = []
    a = np.random.default_rng(0).uniform(-1, 1, 4)
    x = tg.Tensor(a, requires_grad=True)
    y = x * 1.0
    rows.append(("numpy a * c (4 elements)", best_us("a * 1.0001", 20000, a=a)))
    rows.append(("numpy tanh(a)", best_us("np.tanh(a)", 20000, a=a, np=np)))
    rows.append(("Mul.apply(y, c), recording", best_us("Mul.apply(y, 1.0001)", 20000, Mul=Mul, y=y)))
    rows.append(("Tanh.apply(y), recording", best_us("Tanh.apply(y)", 20000, Tanh=Tanh, y=y)))
    with tg.no_grad():
        rows.append(("Mul.apply(y, c) under no_grad", best_us("Mul.apply(y, 1.0001)", 20000, Mul=Mul, y=y)))
        rows.append(("Tanh.apply(y) under no_grad", best_us("Tanh.apply(y)", 20000, Tanh=Tanh, y=y)))
    rows.append(("Tensor._from_op", best_us("T._from_op(a, None)", 20000, T=tg.Tensor, a=a)))
    rows.append(("a.flags.writeable = False; = True", best_us(
        "a.flags.writeable = False; a.flags.writeable = True", 20000, a=np.zeros(4))))

    def imp():
        from tinygraph.errors import InPlaceModificationError  # noqa: F401

    def noop():
        pass
    rows.append(("'from .errors import ...' run inside a function",
                 best_us("f()", 20000, f=imp) - best_us("f()", 20000, f=noop)))

    # per-node engine steps, on fresh nodes (each can run once)
    def per_node(method, make, n=20000):
        nodes = [make() for _ in range(n)]
        it = iter(nodes)
        fn = getattr(type(nodes[0]), method)
        t = min(timeit.repeat(lambda: fn(next(it)), number=n // 5, repeat=5)) / (n // 5) * 1e6
        return t
    w = np.random.default_rng(1).uniform(-1, 1, 4)     # a constant array: saved and locked
    rows.append(("Mul.apply(y, w), w a constant array, recording",
                 best_us("Mul.apply(y, w)", 20000, Mul=Mul, y=y, w=w)))
    if hasattr(tg.Function, "_check_saved"):
        rows.append(("_check_saved, node of y * w (1 locked array)",
                     per_node("_check_saved", lambda: Mul.apply(y, w).grad_fn)))
    rows.append(("_release, node of y * w (1 locked array)",
                 per_node("_release", lambda: Mul.apply(y, w).grad_fn)))
    rows.append(("_release, node of tanh(y) (saves its output, no lock)",
                 per_node("_release", lambda: Tanh.apply(y).grad_fn)))
    rows.append(("_release, node of y * c (nothing saved but c)",
                 per_node("_release", lambda: Mul.apply(y, 1.0001).grad_fn)))
    from tinygraph import autograd
    if hasattr(autograd, "_topological_counts"):
        z = x
        for _ in range(1000):
            z = z * 1.0001
        rows.append(("_topological_counts, per node (1000-node chain)",
                     best_us("f([z.grad_fn])", 20, f=autograd._topological_counts, z=z) / 1000))

    model, X, T, _ = mlp_setup(1)
    mods = list(model.layers)

    def via_modules():
        model(tg.Tensor(X))

    def direct():
        h = tg.Tensor(X)
        for m in mods:
            h = m.forward(h)
    rows.append(("MLP forward B=1 through Module.__call__ (labels nodes)", best_us("f()", 500, f=via_modules)))
    rows.append(("MLP forward B=1 calling each layer's forward directly", best_us("f()", 500, f=direct)))
    return rows


def step_breakdown(batch: int) -> list:
    """Where the graph MLP's step loses time against the manual MLP, by timing variants."""
    from nn.losses import _SoftmaxCrossEntropyNode
    model, X, T, full = mlp_setup(batch)
    opt = nn.SGD(model.parameters(), lr=1e-3)
    manual = model.to_manual()
    mods = list(model.layers)

    def unlabelled_forward():
        h = tg.Tensor(X)
        for m in mods:
            h = m.forward(h)              # Module.forward: no Module.__call__, no labels
        # the loss node itself, without SoftmaxCrossEntropy.forward's target checks
        return _SoftmaxCrossEntropyNode.apply(h, onehot=T)

    def no_labels():
        opt.zero_grad()
        unlabelled_forward().backward()
        opt.step()

    def forward():
        model._loss(X, T)

    def forward_no_grad():
        with tg.no_grad():
            unlabelled_forward()

    def manual_step():
        manual._forward(X)
        manual._backward(T)
        manual._step(1e-3)

    def manual_forward():
        manual._forward(X)

    t = C.compare({"graph step": full, "graph step, layers called directly (no Module.__call__)": no_labels,
                   "manual step": manual_step, "graph forward + loss": forward,
                   "graph forward + loss, layers called directly": unlabelled_forward,
                   "graph forward + loss, layers called directly, no_grad": forward_no_grad,
                   "manual forward": manual_forward, "SGD update (nn.SGD.step)": opt.step},
                  repeat=7, min_time=0.05)
    # backward alone, on fresh graphs
    import time
    gb, mb = [], []
    for r in range(200):
        model.zero_grad()
        loss = model._loss(X, T)
        t0 = time.perf_counter()
        loss.backward()
        t1 = time.perf_counter()
        manual._forward(X)
        t2 = time.perf_counter()
        manual._backward(T)
        t3 = time.perf_counter()
        if r >= 20:
            gb.append(t1 - t0)
            mb.append(t3 - t2)
    rows = [[name, f"{v.median * 1e6:.1f}"] for name, v in t.items()]
    rows += [["graph loss.backward() alone", f"{C.median(gb) * 1e6:.1f}"],
             ["manual _backward alone", f"{C.median(mb) * 1e6:.1f}"]]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--top", type=C.positive_int, default=15,
                    help="rows of each cProfile table (default 15)")
    C.add_thread_arg(ap)
    args = ap.parse_args()
    C.machine_info("hot spots (benchmarks/hotspots.py)", args.threads)
    x0 = np.random.default_rng(0).uniform(-1, 1, 4)
    g = np.ones(4)
    show_profile("1000-node chain (x*c, x+c, tanh mixed), forward + backward",
                 lambda: chain_mix(x0, g), 100, args.top)
    for b, calls in ((1, 2000), (64, 300)):
        _, _, _, step = mlp_setup(b)
        for _ in range(5):
            step()
        show_profile(f"graph MLP training step, float32, batch {b}", step, calls, args.top)
    for b in (1, 64):
        C.print_table(["variant", "us (median)"], step_breakdown(b),
                      title=f"graph vs manual MLP step, float32, batch {b}: timed variants")
    rows = [[name, f"{us:.2f}"] for name, us in micro()]
    C.print_table(["piece", "us (best sample)"], rows, title="micro-timings of engine pieces")
    print("(best of 9 samples; the _check_saved and _release rows best of 5, and they include "
          "~0.1 us of lambda + next() per call)\n")
    C.load_warning()


if __name__ == "__main__":
    main()
