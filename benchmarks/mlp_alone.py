"""The training step of mlp_step.py with every contender alone in processes of its own.

With 2 threads on a 2-core machine, numpy's OpenBLAS and PyTorch's OpenMP threads slow each
other down when both libraries run in one process (each keeps its threads spinning for a
while after a call). Here a process runs one contender only, as a user would: the graph MLP
and the manual MLP in processes that never load PyTorch, PyTorch in processes where numpy
does no BLAS work. Each contender runs in --processes fresh processes (in rotating order);
each process reports the median of --repeat samples of >= --min-time seconds per step, and
the tables give, per contender, the median over the processes that did not run in a slow
phase (below) and every process's value (so that a machine phase that lasts a whole
process shows up, not as noise).

Contenders: graph (nn.MLP, targets prepared once, as fit runs it), graph pub (the same
through the public loss(X, y), labels checked every step, as PyTorch's CrossEntropyLoss
does), manual (nn.manual.MLP) and torch (see mlp_step.py).

Every process probes its library's multi-thread speedup before and after each row: the
numpy processes numpy's BLAS (``_common.blas_speedup``, with threadpoolctl), PyTorch's its
own matmul (``_common.torch_speedup``), so that numpy's BLAS threads never start in them. A
process whose probe reads below 1.6x ran in a slow phase of the machine. The medians and
ratios of the first table are over the processes that did not (all of them with one
thread); every process's time is listed below it. Ratios compare processes, not
interleaved steps, so the spread of each contender's times says how far to trust them.

Run:  python benchmarks/mlp_alone.py [--processes 5] [--batches 1,64] [--dtypes float32]
                                     [--repeat 5] [--min-time 0.1] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import _common as C
from _common import np

NAMES = ("graph", "graph pub", "manual", "torch")


def child(name: str, batches: list[int], dtypes: list, repeat: int, min_time: float) -> None:
    """Time one contender; print {"times": {"dtype,batch": seconds per step}, "speedups":
    {"dtype,batch": lowest BLAS speedup probed before and after, or None}} as one JSON line."""
    import mlp_step                       # imported here: it imports nn, numpy, maybe torch

    times, speedups = {}, {}
    # (numpy's BLAS threads stay asleep in PyTorch's processes: it probes its own matmul)
    probe = C.torch_speedup if name == "torch" else C.blas_speedup
    for dt in dtypes:
        for b in batches:
            fns, _ = mlp_step.build(b, dt)
            fn = fns[name]
            before = probe()
            for _ in range(3):
                fn()
            number = C.calibrate(fn, min_time)
            samples = [C._loop(fn, number) / number for _ in range(repeat)]
            key = f"{np.dtype(dt).name},{b}"
            times[key] = statistics.median(samples)
            probes = [s for s in (before, probe()) if s is not None]
            speedups[key] = min(probes) if probes else None
    print(json.dumps({"times": times, "speedups": speedups}))


def run_child(name: str, args) -> dict:
    env = dict(os.environ)
    if name != "torch":
        env["TINYGRAPH_BENCH_NO_TORCH"] = "1"
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name,
           "--batches", ",".join(map(str, args.batches)),
           "--dtypes", ",".join(np.dtype(d).name for d in args.dtypes),
           "--repeat", str(args.repeat), "--min-time", str(args.min_time)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mlp_alone.py: the {name} process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=C.positive_int, default=5,
                    help="fresh processes per contender (default 5)")
    ap.add_argument("--batches", type=C.positive_ints, default="1,64",
                    help="batch sizes (default 1,64)")
    ap.add_argument("--dtypes", type=C.float_dtypes, default="float32",
                    help="dtypes: float32, float64 (default float32)")
    ap.add_argument("--repeat", type=C.positive_int, default=5,
                    help="samples per process (default 5)")
    ap.add_argument("--min-time", type=C.seconds, default=0.1,
                    help="seconds per sample, at least (default 0.1)")
    ap.add_argument("--child", choices=NAMES, help=argparse.SUPPRESS)
    C.add_thread_arg(ap)
    args = ap.parse_args()
    batches, dtypes = args.batches, args.dtypes
    if args.child:
        C.set_threads(args.threads)
        child(args.child, batches, dtypes, args.repeat, args.min_time)
        return

    C.machine_info("one training step, each contender alone in its own processes "
                   "(benchmarks/mlp_alone.py)", args.threads)
    names = [n for n in NAMES if n != "torch" or C.torch is not None]
    per = {n: [] for n in names}
    probed = {n: [] for n in names}
    for r in range(args.processes):
        for name in names[r % len(names):] + names[:r % len(names)]:
            result = run_child(name, args)
            per[name].append(result["times"])
            probed[name].append(result["speedups"])
    keys = list(per[names[0]][0])
    rows = []
    for k in keys:
        med = {n: fast_median(per[n], probed[n], k) for n in names}

        def ratio(a, b):
            return C.fmt_ratio(med[a][0] / med[b][0]) if med[a][0] and med[b][0] else "-"

        rows.append([k.replace(",", " B=")] +
                    [f"{m * 1e3:.3f} ({used}/{args.processes})" if m else f"- (0/{args.processes})"
                     for m, used in med.values()] +
                    [ratio("graph", "manual")] +
                    ([ratio("graph", "torch"), ratio("graph pub", "torch")]
                     if "torch" in names else ["-", "-"]))
    C.print_table(["dtype, batch"] + [f"{n} ms" for n in names] +
                  ["graph/manual", "graph/torch", "graph pub/torch"], rows,
                  title=f"milliseconds per step: median over the processes not in a slow phase "
                        f"(how many of the {args.processes} in brackets; each process the median "
                        f"of its {args.repeat} samples); ratios of those medians")
    for n in names:
        rows = [[k.replace(",", " B=")] + [f"{run[k] * 1e3:.3f}" for run in per[n]] for k in keys]
        C.print_table(["dtype, batch"] + [f"p{i + 1}" for i in range(args.processes)], rows,
                      title=f"{n}: ms per step in each process")
    if C.torch is None:
        print(f"torch: {C.TORCH_SKIPPED}\n")
    print_phases(probed, keys, args.processes)
    C.load_warning()


def fast_median(runs: list, speedups: list, key: str) -> tuple[float | None, int]:
    """(median time of ``key`` over the processes whose probe did not read a slow phase, how
    many those were); (None, 0) when every process did."""
    fast = [run[key] for run, s in zip(runs, speedups) if C.slow_phase([s[key]]) is None]
    return (statistics.median(fast) if fast else None), len(fast)


def print_phases(probed: dict, keys: list, processes: int) -> None:
    """The speedup each process probed, and which processes ran in a slow phase."""
    mlps = list(probed)
    if all(s is None for n in mlps for run in probed[n] for s in run.values()):
        print(C.probe_legend(False) + "\n")
        return
    for n in mlps:
        rows = [[k.replace(",", " B=")] + [C.fmt_ratio(run[k]) for run in probed[n]]
                for k in keys]
        C.print_table(["dtype, batch"] + [f"p{i + 1}" for i in range(processes)], rows,
                      title=f"{n}: {'PyTorch' if n == 'torch' else 'BLAS'} speedup in each "
                            f"process (the lower of the probes before and after the row)")
    slow = [f"{n} p{i + 1} {k.replace(',', ' B=')}" for n in mlps
            for i, run in enumerate(probed[n]) for k in keys
            if C.slow_phase([run[k]]) is not None]
    print(C.probe_legend(True) + " (PyTorch's processes: the same product with PyTorch's "
          "threads against 1). "
          + (f"Slow phase: {', '.join(slow)}: left out of the medians and ratios above."
             if slow else "No process ran in a slow phase.") + "\n")


if __name__ == "__main__":
    main()
