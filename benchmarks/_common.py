"""Shared helpers of the benchmark scripts: import path, machine info, timing, PyTorch.

Every script measures all its columns in one process run, so the ratios it prints compare
numbers taken on the same machine, minutes apart. Timing: ``time.perf_counter``, a warm-up,
then ``repeat`` rounds of samples, each round taking every contender once in a freshly
shuffled order (so a slow phase of a shared machine hits all of them alike, and none mostly
runs after the same one); each sample times a loop long enough to be well above the
timer's resolution; the median sample is reported.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from typing import Callable, NamedTuple

# The scripts run from a checkout without installing the package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402

# optional; a process that must not even load it (mlp_alone.py's numpy-only children) sets
# TINYGRAPH_BENCH_NO_TORCH=1
if os.environ.get("TINYGRAPH_BENCH_NO_TORCH"):
    torch = None
else:
    try:
        import torch  # type: ignore
    except ImportError:  # pragma: no cover - depends on the machine
        torch = None

try:  # optional: tells which BLAS kernel and how many threads numpy really uses
    import threadpoolctl  # type: ignore
except ImportError:  # pragma: no cover
    threadpoolctl = None

TORCH_SKIPPED = "PyTorch not installed: skipped"


def leave_out_torch() -> None:
    """Run without PyTorch even when it is installed (``--no-torch``): with 2 threads its
    OpenMP threads keep spinning after each of its steps and slow whatever runs next."""
    global torch, TORCH_SKIPPED
    torch = None
    TORCH_SKIPPED = "left out (--no-torch)"


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def numpy_blas_info() -> str:
    """numpy's BLAS: library, version, kernel (architecture) and threads."""
    if threadpoolctl is not None:
        rows = [i for i in threadpoolctl.threadpool_info()
                if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
        rows = rows or [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if rows:
            i = rows[0]
            return (f"{i.get('internal_api')} {i.get('version')}, kernel "
                    f"{i.get('architecture', '?')}, {i.get('num_threads')} threads")
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (install threadpoolctl to see kernel/threads)"
    except Exception:  # pragma: no cover - old numpy
        return "unknown (install threadpoolctl)"


def numpy_blas_threads() -> int:
    if threadpoolctl is not None:
        for i in threadpoolctl.threadpool_info():
            if i.get("user_api") == "blas" and "numpy" in i.get("filepath", ""):
                return int(i.get("num_threads"))
    return cores()


_limits = None   # keeps a threadpoolctl limit alive for the whole run


def set_threads(n: int | None) -> None:
    """Use ``n`` threads in numpy's BLAS (needs threadpoolctl) and in PyTorch.

    ``None``: leave numpy's BLAS as it is (all cores by default) and give PyTorch as many
    threads as numpy's BLAS has, so that the two compete on equal terms.
    """
    global _limits
    if n is not None:
        if threadpoolctl is not None:
            _limits = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        elif numpy_blas_threads() != n:
            print(f"warning: threadpoolctl is not installed, numpy's BLAS keeps its threads; "
                  f"set OPENBLAS_NUM_THREADS={n} in the environment instead")
    if torch is not None:
        torch.set_num_threads(n if n is not None else numpy_blas_threads())


# -- command-line values: checked by argparse, so a bad one is a one-line usage error ------

def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def positive_ints(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers of at least 1 ("1,64,1000")."""
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 1, got "
                                         f"{text!r}")
    return [positive_int(t) for t in items]


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more (0: one loop per sample)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:      # inf would calibrate forever
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return value


FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def float_dtypes(text: str) -> list:
    """argparse type: comma-separated dtype names out of FLOAT_DTYPES ("float32,float64")."""
    names = [t.strip() for t in text.split(",")]
    unknown = [n for n in names if n not in FLOAT_DTYPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown dtype(s) {unknown}; choose from "
                                         f"{', '.join(FLOAT_DTYPES)}")
    return [FLOAT_DTYPES[n] for n in names]


def add_thread_arg(ap) -> None:
    ap.add_argument("--threads", type=positive_int, default=None,
                    help="threads for numpy's BLAS and PyTorch (default: numpy's default, "
                         "i.e. all cores; PyTorch gets the same)")


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {cores()} cores"


def load_warning() -> None:
    """Say so when other processes compete for the cores (numbers then get noisy)."""
    try:
        one = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return
    print(f"load average at the end: {load_average()}")
    if one > cores():            # the benchmark itself accounts for up to `cores` of it
        print("note: other processes were competing for the cores; prefer the 'min' figures "
              "and rerun on a quiet machine")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or platform.machine()


def code_version() -> str:
    """The commit measured, and whether the engine's files differ from it (read-only git)."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tinygraph", "nn",
                                "activations"], cwd=_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.split("\n")
        dirty = [ln for ln in dirty if ln.strip() and not ln.startswith("??")]
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    return head + (f" + uncommitted changes in {len(dirty)} file(s) of tinygraph/nn/activations"
                   if dirty else "")


def machine_info(title: str, threads: int | None = None) -> None:
    """Set the thread counts and print what the numbers below were measured on."""
    set_threads(threads)
    print(f"== {title}")
    print(f"machine : {cpu_model()}, {cores()} cores, {platform.system()} {platform.machine()}")
    print(f"python  : {platform.python_version()}   numpy {np.__version__}")
    print(f"code    : {code_version()}")
    print(f"BLAS    : {numpy_blas_info()}")
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                          "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    set_ = {k: v for k, v in env.items() if v is not None}
    print(f"env     : {', '.join(f'{k}={v}' for k, v in set_.items()) if set_ else 'no OPENBLAS_*/OMP_* overrides'}")
    if torch is None:
        print(f"torch   : {TORCH_SKIPPED}")
    else:
        print(f"torch   : {torch.__version__}, {torch.get_num_threads()} threads "
              f"(numpy BLAS threads {numpy_blas_threads()})")
    print(f"load    : {load_average()} at the start")
    print()


# -- timing ----------------------------------------------------------------------------

def _loop(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - t0


def calibrate(fn: Callable[[], object], min_time: float) -> int:
    """Smallest loop count (1, 2, 5, 10, 20, ...) whose loop takes at least ``min_time``."""
    number = 1
    while True:
        for k in (1, 2, 5):
            n = number * k
            if _loop(fn, n) >= min_time:
                return n
        number *= 10


class Stats(NamedTuple):
    median: float
    min: float


def stats(xs) -> Stats:
    return Stats(statistics.median(xs), min(xs))


def compare(fns: dict[str, Callable[[], object]], repeat: int = 7, min_time: float = 0.05,
            warmup: int = 2) -> dict[str, Stats]:
    """Seconds per call of each function (median and min of the samples), taken in rounds.

    Each round takes every contender once, in an order shuffled afresh (seeded, so a run
    can be repeated): what runs right after another contender can be slowed by it
    (PyTorch's OpenMP threads keep spinning after its step and cost the next 2-thread BLAS
    call ~5 % here), so no contender may mostly follow the same one. (Rotating a fixed
    order would not do: it keeps each contender's predecessor.)
    """
    if not fns:
        return {}
    numbers = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        numbers[name] = calibrate(fn, min_time)
    samples: dict[str, list] = {name: [] for name in fns}
    order = list(fns)
    shuffle = random.Random(0).shuffle
    for _ in range(repeat):
        shuffle(order)
        for name in order:
            samples[name].append(_loop(fns[name], numbers[name]) / numbers[name])
    return {name: stats(s) for name, s in samples.items()}


class Paired(NamedTuple):
    """Ratio a/b from blocks timed back to back: median and quartiles over the pairs, and
    the median seconds per call of each side in those blocks (they show the machine's
    phase)."""
    median: float
    q1: float
    q3: float
    a: float
    b: float


def paired_ratio(fa: Callable[[], object], fb: Callable[[], object], pairs: int = 30,
                 min_time: float = 0.005, warmup: int = 2) -> Paired:
    """Time of ``fa`` over time of ``fb``, each ratio from two blocks run back to back.

    On this 2-core VM a 2-thread BLAS switches between a fast and a slow mode (the same
    step takes 0.6 or 1.3 ms) that lasts from milliseconds to seconds. Samples of 0.1 s
    taken one contender after the other then compare one mode with the other; two blocks
    of a few milliseconds run back to back almost always see the same mode, so their ratio
    keeps only the difference between the contenders. Blocks alternate ABBA so that neither
    contender always runs first.
    """
    if pairs < 2:
        raise ValueError(f"paired_ratio: pairs must be at least 2 for quartiles, got {pairs}")
    for _ in range(warmup):
        fa()
        fb()
    n = max(calibrate(fa, min_time), calibrate(fb, min_time))
    ratios, times_a, times_b = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            ta = _loop(fa, n)
            tb = _loop(fb, n)
        else:
            tb = _loop(fb, n)
            ta = _loop(fa, n)
        ratios.append(ta / tb)
        times_a.append(ta / n)
        times_b.append(tb / n)
    # "inclusive": quartiles between the smallest and largest ratio (the default,
    # "exclusive", extrapolates beyond them for few pairs: 2 ratios gave a quartile of -0.67)
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return Paired(q2, q1, q3, statistics.median(times_a), statistics.median(times_b))


# -- the machine's BLAS phase ------------------------------------------------------------

#: Below this multi-thread speedup of the probe matmul, a row is flagged as run in a slow
#: BLAS phase. On the 2-core VM of docs/performance.md the probe reads 1.8-1.9x in the fast
#: 2-thread phase and 1.3-1.4x in the slow one; another machine may need another value.
SLOW_PHASE_SPEEDUP = 1.6


def blas_speedup(samples: int = 5, number: int = 50) -> float | None:
    """How much faster numpy's BLAS computes a (64, 784) @ (784, 256) float32 product (the
    first layer of a batch-64 step) with its current threads than with one: the median of
    ``samples`` loops of ``number`` products each way. None when numpy's BLAS has one
    thread, or without threadpoolctl to switch it to one.

    It tells which phase a 2-thread run was measured in (docs/performance.md, *Measuring on
    this machine*): in the slow phase the batch-64 step takes twice as long and ratios
    against it mean something else."""
    if threadpoolctl is None or numpy_blas_threads() < 2:
        return None
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 784)).astype(np.float32)
    b = rng.standard_normal((784, 256)).astype(np.float32)

    def product():
        a @ b

    def median_loop():
        return statistics.median(_loop(product, number) for _ in range(samples))

    product()
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        product()
        one = median_loop()
    return one / median_loop()


def torch_speedup(samples: int = 5, number: int = 50) -> float | None:
    """``blas_speedup`` for PyTorch's own matmul (its threads against one), for processes
    that run PyTorch only (mlp_alone.py): None without PyTorch or with one thread."""
    if torch is None or torch.get_num_threads() < 2:
        return None
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(64, 784, generator=gen)
    b = torch.randn(784, 256, generator=gen)

    def product():
        a @ b

    def median_loop():
        return statistics.median(_loop(product, number) for _ in range(samples))

    threads = torch.get_num_threads()
    product()
    torch.set_num_threads(1)
    try:
        product()
        one = median_loop()
    finally:
        torch.set_num_threads(threads)
    product()
    return one / median_loop()


def probe_legend(probed: bool, when: str = "") -> str:
    """The line under a table of probed speedups: what the probe measures (``when``: at which
    moments), or why nothing was probed."""
    if not probed:
        why = ("numpy's BLAS has one thread" if threadpoolctl is not None
               else "install threadpoolctl to probe it")
        return f"BLAS speedup: not probed ({why})"
    return (f"BLAS speedup: a (64, 784) @ (784, 256) float32 product with numpy's "
            f"{numpy_blas_threads()} threads against 1{when}; below {SLOW_PHASE_SPEEDUP}x "
            f"{'the row ran in ' if when else ''}a slow phase of the machine's BLAS "
            f"(docs/performance.md)")


def slow_phase(speedups) -> float | None:
    """The lowest of the probe's ``speedups`` (None entries ignored) when it is below
    ``SLOW_PHASE_SPEEDUP``, else None."""
    known = [s for s in speedups if s is not None]
    if known and min(known) < SLOW_PHASE_SPEEDUP:
        return min(known)
    return None


def median(xs) -> float:
    return statistics.median(xs)


def fresh_gc() -> None:
    """Collect garbage left by the previous sample so it is not charged to the next one."""
    gc.collect()


def verdict(median_value: float, best_value: float, limit: float) -> str:
    """Status of a "value <= limit" target from the median and the best sample."""
    if median_value <= limit and best_value <= limit:
        return "met"
    if median_value > limit and best_value > limit:
        return f"NOT met (by {100 * (min(median_value, best_value) / limit - 1):.0f}%)"
    return ("uncertain: the median and the best samples disagree, the run was disturbed; "
            "rerun on a quiet machine")


#: A paired ratio whose upper quartile is more than this many times its lower one was taken
#: while something disturbed the machine: its verdict is printed, but marked unreliable.
MAX_PAIRED_SPREAD = 1.3


def paired_verdict(pair: Paired, limit: float, slow: float | None = None) -> str:
    """Status of a "ratio <= limit" target from a paired ratio: met or NOT met by its median,
    with what makes the reading doubtful appended: the limit inside the quartiles, quartiles
    too far apart (``MAX_PAIRED_SPREAD``), a slow BLAS phase (``slow``: the lowest probed
    speedup, from ``slow_phase``)."""
    if pair.median <= limit:
        status = "met"
    else:
        status = f"NOT met (by {100 * (pair.median / limit - 1):.0f}%)"
    if pair.q1 <= limit < pair.q3:
        status += ", within the quartiles"
    if pair.q3 > MAX_PAIRED_SPREAD * pair.q1:
        status += (f"; unreliable: the quartiles are {pair.q3 / pair.q1:.2f}x apart (more than "
                   f"{MAX_PAIRED_SPREAD}x; the machine was disturbed), rerun")
    if slow is not None:
        status += (f"; measured in a slow BLAS phase (speedup {slow:.2f}x): not "
                   f"representative, rerun")
    return status


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    """A plain text table, right-aligned numbers."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    if title:
        print(title)
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()
