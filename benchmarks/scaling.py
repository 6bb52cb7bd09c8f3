"""Backward time against graph size: the cost per node must stay flat (linear total cost).

Two shapes of graph, each with N = 1e3, 1e4, 1e5 and 1e6 nodes on a 4-element float64 array:

  chain   y = y * c, N times: depth N, every node has one consumer
  wide    h = x * 1; N/2 independent branches h * c_i; their sum as a balanced tree of N/2 - 1
          additions: depth ~log2 N, one node (h) with N/2 consumers whose gradients are summed

For each: the median backward time, backward and forward microseconds per node, and the
backward cost per node relative to the smallest graph (1.00 = perfectly linear). "cpu" is the
share of the backward's wall time this thread spent on a CPU (below 100%: the process was
waiting for a core, the wall time overstates the cost); "cpu-us/node" is the backward's CPU
time per node (time.thread_time), which such waits do not inflate. Python's garbage
collector is on.

The verdict reads the slope of log(backward CPU time) against log(nodes), fitted by least
squares over the sizes: 1 for a linear cost, and ~1.10 from 1e3 to 1e6 nodes for N log N
(the per-node cost doubles over the range), so the target "linear" is a slope <= 1.05.

Run:  python benchmarks/scaling.py [--max-nodes 1000000]     (about a minute on 2 cores)
"""
from __future__ import annotations

import argparse
import gc
import time

import _common as C
from _common import np

import tinygraph as tg

X0 = np.random.default_rng(0).uniform(-1, 1, 4)
G = np.ones(4)


def chain(n: int):
    x = tg.Tensor(X0, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    return x, y


def wide(n: int):
    x = tg.Tensor(X0, requires_grad=True)
    h = x * 1.0
    level = [h * (1.0 + 1e-6 * i) for i in range(n // 2)]
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return x, level[0]


def node_count(kind: str, n: int) -> int:
    return n if kind == "chain" else 1 + n // 2 + (n // 2 - 1)


def repeats(n: int) -> int:
    return {1_000: 30, 10_000: 10}.get(n, 3)


def measure(kind: str, n: int, reps: int) -> dict:
    build = chain if kind == "chain" else wide
    fwd, bwd, cpu, bwd_cpu = [], [], [], []
    for r in range(reps + (1 if n <= 100_000 else 0)):    # one warm-up below 1e6 nodes
        gc.collect()
        t0 = time.perf_counter()
        x, out = build(n)
        t1 = time.perf_counter()
        c1 = time.thread_time()
        out.backward(G)
        c2 = time.thread_time()
        t2 = time.perf_counter()
        assert x.grad is not None
        del x, out
        if n <= 100_000 and r == 0:
            continue
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        cpu.append((c2 - c1) / (t2 - t1))
        bwd_cpu.append(c2 - c1)
    nodes = node_count(kind, n)
    return {"nodes": nodes, "reps": len(bwd), "bwd": C.median(bwd), "bwd_min": min(bwd),
            "fwd": C.median(fwd), "cpu": C.median(cpu), "bwd_cpu": C.median(bwd_cpu)}


#: Largest log-log slope of backward time against nodes read as linear (N log N: ~1.10).
MAX_LINEAR_SLOPE = 1.05


def loglog_slope(nodes: list, seconds: list) -> float:
    """Least-squares slope of log(seconds) against log(nodes)."""
    x, y = np.log(np.asarray(nodes, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    x = x - x.mean()
    return float(np.sum(x * (y - y.mean())) / np.sum(x * x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-nodes", type=int, default=1_000_000,
                    help="largest graph (default 1000000)")
    args = ap.parse_args()
    if args.max_nodes < 1_000:
        ap.error(f"--max-nodes must be at least 1000 (the smallest graph), got {args.max_nodes}")
    C.machine_info("backward scaling (benchmarks/scaling.py)")
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.max_nodes]
    start = time.perf_counter()
    rows = []
    verdicts = []
    for kind in ("chain", "wide"):
        base = None
        worst = 0.0
        points = []
        for n in sizes:
            m = measure(kind, n, repeats(n))
            per = m["bwd"] / m["nodes"] * 1e6
            per_min = m["bwd_min"] / m["nodes"] * 1e6
            per_cpu = m["bwd_cpu"] / m["nodes"] * 1e6
            base = base or per_cpu
            worst = max(worst, per_cpu / base)
            points.append((m["nodes"], m["bwd_cpu"]))
            rows.append([kind, f"{m['nodes']:,}", m["reps"], f"{m['bwd'] * 1e3:.1f}",
                         f"{per:.2f}", f"{per_min:.2f}", f"{per_cpu:.2f}", f"{per_cpu / base:.2f}",
                         f"{m['fwd'] / m['nodes'] * 1e6:.2f}", f"{100 * m['cpu']:.0f}%"])
        verdicts.append((kind, worst, loglog_slope(*zip(*points)) if len(points) > 1 else None))
    C.print_table(["graph", "nodes", "reps", "bwd ms", "bwd us/node", "(min)", "cpu-us/node",
                   "vs smallest", "fwd us/node", "cpu"], rows,
                  title="backward per node: wall time (median, min) and CPU time of the thread "
                        "(median); 'vs smallest' compares CPU time per node")
    for kind, worst, slope in verdicts:
        if slope is None:
            print(f"{kind}: one graph size only (--max-nodes below 10000): nothing to compare, "
                  f"linearity not judged")
            continue
        linear = slope <= MAX_LINEAR_SLOPE
        print(f"{kind}: log-log slope of backward time against nodes {slope:.3f} "
              f"(1 = linear, ~1.10 = N log N; target <= {MAX_LINEAR_SLOPE}) -> "
              f"{'linear' if linear else 'NOT linear'}; largest per-node cost {worst:.2f}x "
              f"the smallest graph's")
    print(f"\ntotal time of this script: {time.perf_counter() - start:.0f} s")
    C.load_warning()


if __name__ == "__main__":
    main()
