"""The training step of mlp_step.py with every contender alone in processes of its own.

With 2 threads on a 2-core machine, numpy's OpenBLAS and PyTorch's OpenMP threads slow each
other down when both libraries run in one process (each keeps its threads spinning for a
while after a call). Here a process runs one contender only, as a user would: the graph MLP
and the manual MLP in processes that never load PyTorch, PyTorch in processes where numpy
does no BLAS work. Each contender runs in --processes fresh processes (in rotating order);
each process reports the median of --repeat samples of >= --min-time seconds per step, and
the tables give, per contender, the median over processes and every process's value (so
that a machine phase that lasts a whole process shows up as an outlier, not as noise).

Ratios are of the medians over processes; they compare processes, not interleaved steps,
so the spread of each contender's column says how far to trust them. The MLP processes also
probe the machine's BLAS phase before and after each row (``_common.blas_speedup``, with
threadpoolctl): a process whose probe reads below 1.6x ran in a slow phase. PyTorch's
processes are not probed, so that numpy's BLAS threads never start in them.

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

NAMES = ("graph", "manual", "torch")


def child(name: str, batches: list[int], dtypes: list, repeat: int, min_time: float) -> None:
    """Time one contender; print {"times": {"dtype,batch": seconds per step}, "speedups":
    {"dtype,batch": lowest BLAS speedup probed before and after, or None}} as one JSON line."""
    import mlp_step                       # imported here: it imports nn, numpy, maybe torch

    times, speedups = {}, {}
    probe = name != "torch"               # (numpy's BLAS threads stay asleep in PyTorch's)
    for dt in dtypes:
        for b in batches:
            fns, _ = mlp_step.build(b, dt)
            fn = fns[name]
            before = C.blas_speedup() if probe else None
            for _ in range(3):
                fn()
            number = C.calibrate(fn, min_time)
            samples = [C._loop(fn, number) / number for _ in range(repeat)]
            key = f"{np.dtype(dt).name},{b}"
            times[key] = statistics.median(samples)
            probes = [s for s in (before, C.blas_speedup() if probe else None) if s is not None]
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

    def med(name, key):
        return statistics.median(run[key] for run in per[name])

    rows = [[k.replace(",", " B=")] + [f"{med(n, k) * 1e3:.3f}" for n in names] +
            [C.fmt_ratio(med("graph", k) / med("manual", k))] +
            ([C.fmt_ratio(med("graph", k) / med("torch", k))] if "torch" in names else ["-"])
            for k in keys]
    C.print_table(["dtype, batch"] + [f"{n} ms" for n in names] + ["graph/manual", "graph/torch"],
                  rows, title=f"milliseconds per step: median over {args.processes} processes "
                              f"(each the median of its {args.repeat} samples)")
    for n in names:
        rows = [[k.replace(",", " B=")] + [f"{run[k] * 1e3:.3f}" for run in per[n]] for k in keys]
        C.print_table(["dtype, batch"] + [f"p{i + 1}" for i in range(args.processes)], rows,
                      title=f"{n}: ms per step in each process")
    if C.torch is None:
        print(f"torch: {C.TORCH_SKIPPED}\n")
    print_phases(probed, keys, args.processes)
    C.load_warning()


def print_phases(probed: dict, keys: list, processes: int) -> None:
    """The BLAS speedup each MLP process probed, and which processes ran in a slow phase."""
    mlps = [n for n in probed if n != "torch"]
    if all(s is None for n in mlps for run in probed[n] for s in run.values()):
        print(C.probe_legend(False) + "\n")
        return
    for n in mlps:
        rows = [[k.replace(",", " B=")] + [C.fmt_ratio(run[k]) for run in probed[n]]
                for k in keys]
        C.print_table(["dtype, batch"] + [f"p{i + 1}" for i in range(processes)], rows,
                      title=f"{n}: BLAS speedup in each process (the lower of the probes before "
                            f"and after the row)")
    slow = [f"{n} p{i + 1} {k.replace(',', ' B=')}" for n in mlps
            for i, run in enumerate(probed[n]) for k in keys
            if C.slow_phase([run[k]]) is not None]
    print(C.probe_legend(True) + ". "
          + (f"Slow phase: {', '.join(slow)}: read those times with care."
             if slow else "No process ran in a slow phase.") + "\n")


if __name__ == "__main__":
    main()
