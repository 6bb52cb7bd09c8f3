"""Instructions per training step, counted by valgrind: the graph's overhead without the noise.

Timings on a small VM move by a few per cent from run to run (docs/performance.md), which
hides a change of a microsecond or two in a 0.2–1 ms step. valgrind's cachegrind counts the
instructions a process executes instead. Each contender runs in two processes under it, one
doing --steps N1 training steps and one N2; the difference divided by N2 - N1 is one step,
with start-up and set-up cancelled out. With PYTHONHASHSEED fixed the count repeats to about
0.1 % of the graph's overhead for the same code; between commits it also moves by a few
thousand instructions with code the step does not run, so count a change on one tree with
and without it.

The count says how much work the code does, not how long it takes: the cache misses that make
Python code slower right after a BLAS call (docs/performance.md, section 6) are not in it.
Use it to see what a change removes, and the timing scripts for what it is worth.

Contenders (float32, 1 BLAS thread, the network and step of mlp_step.py):
  manual              nn.manual.MLP's step
  graph               nn.MLP's step
  graph, direct       the same with each layer's forward called directly: no Module.__call__
  graph, tg.relu      the activations adapter replaced by tinygraph's own relu node
  graph, no locks     saved arrays not made read-only (what the locks cost; unsafe, measuring only)

Run:  python benchmarks/instructions.py [--batch 1] [--steps 20,120] [--only graph,manual]
                                         [--valgrind valgrind]
      (a name with a comma goes in an --only of its own: --only graph --only "graph, no locks")
Needs valgrind (Debian package valgrind); without it the script says so and stops.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

# One BLAS thread here and in the child processes (they inherit it): the counts are of this
# process's own instructions, and BLAS threads would only add their spinning.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["TINYGRAPH_BENCH_NO_TORCH"] = "1"       # the contenders are the two MLPs

import _common as C  # noqa: E402

VARIANTS = ("manual", "graph", "graph, direct", "graph, tg.relu", "graph, no locks")


def child(variant: str, batch: int, steps: int) -> None:
    """Run ``steps`` training steps of one variant (under valgrind, from ``main``)."""
    import mlp_step                       # imported here: it imports nn and numpy
    import nn
    import tinygraph as tg
    import tinygraph.function
    from nn.mlp import MLP

    if variant == "graph, direct":
        def layers_directly(self, X, targets):
            x = tg.Tensor(X)
            for m in self.layers:
                x = m.forward(x)
            return self.loss_fn.node(x, targets)
        MLP._loss = layers_directly
    elif variant == "graph, tg.relu":
        nn.ActivationLayer.forward = lambda self, z: tg.relu(z)
    elif variant == "graph, no locks":
        tinygraph.function._lock_shared = lambda array, locked: None
    fns, _ = mlp_step.build(batch, C.np.float32)
    step = fns["manual" if variant == "manual" else "graph"]
    for _ in range(steps):
        step()


def contenders(only: list[str]) -> tuple[str, ...]:
    """The contenders of the --only options, in the order given. Names hold commas ("graph,
    no locks"), so a value that is a whole name is taken as it is; any other value is a
    comma-separated list of names ("graph,manual")."""
    chosen: list[str] = []
    for value in only:
        names = [value.strip()] if value.strip() in VARIANTS else [
            v.strip() for v in value.split(",")]
        chosen += [v for v in names if v not in chosen]
    return tuple(chosen)


def parse_instructions(valgrind_output: str) -> int:
    """The 'I refs' total of a cachegrind run's summary."""
    found = re.search(r"I\s+refs:\s+([\d,]+)", valgrind_output)
    if found is None:
        raise RuntimeError("instructions.py: no 'I refs' line in valgrind's output:\n"
                           + valgrind_output[-2000:])
    return int(found.group(1).replace(",", ""))


def count(valgrind: str, variant: str, batch: int, steps: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, os.path.abspath(__file__), "--child", variant,
           "--batch", str(batch), "--steps", str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"instructions.py: {variant!r} failed under valgrind:\n"
                           f"{done.stderr[-3000:]}")
    return parse_instructions(done.stderr)


def per_step(valgrind: str, variant: str, batch: int, n1: int, n2: int) -> float:
    return (count(valgrind, variant, batch, n2) - count(valgrind, variant, batch, n1)) / (n2 - n1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=C.positive_int, default=1, help="batch size (default 1)")
    ap.add_argument("--steps", default="20,120", help="N1,N2: steps of the two runs")
    ap.add_argument("--only", action="append", default=None,
                    help="contenders to count, comma-separated (graph,manual), or one whole "
                         "name per --only (--only 'graph, no locks'); default: all")
    ap.add_argument("--valgrind", default="valgrind", help="the valgrind command")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.batch, int(args.steps))
        return
    try:
        n1, n2 = (int(s) for s in args.steps.split(","))
    except ValueError:
        n1 = n2 = 0
    if not n2 > n1 >= 1:
        ap.error(f"--steps N1,N2 needs two numbers with N2 > N1 >= 1, got {args.steps!r}")
    variants = VARIANTS if args.only is None else contenders(args.only)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown contender(s) {unknown}; choose from {list(VARIANTS)}")
    valgrind = shutil.which(args.valgrind)
    if valgrind is None:
        sys.exit(f"instructions.py: {args.valgrind!r} not found; install valgrind "
                 f"(Debian: apt-get install valgrind) to count instructions")
    C.TORCH_SKIPPED = "not used (the contenders are the two MLPs)"
    C.machine_info("instructions per training step, counted by valgrind (benchmarks/"
                   "instructions.py)")
    print(f"[784, 256, 128, 10], float32, batch {args.batch}, 1 BLAS thread, "
          f"PYTHONHASHSEED=0; one step = (run of {n2} steps - run of {n1}) / {n2 - n1}\n")
    with ThreadPoolExecutor(max_workers=max(1, C.cores())) as pool:
        counts = dict(zip(variants, pool.map(
            lambda v: per_step(valgrind, v, args.batch, n1, n2), variants)))
    rows = []
    for v in variants:
        row = [v, f"{counts[v]:,.0f}"]
        row.append(f"{counts[v] - counts['graph']:+,.0f}" if "graph" in counts else "-")
        row.append(f"{counts[v] - counts['manual']:+,.0f}" if "manual" in counts else "-")
        rows.append(row)
    C.print_table(["contender", "instructions/step", "vs graph", "vs manual"], rows)
    print("vs graph / vs manual: instructions per step more (+) or fewer (-) than that "
          "contender's step")


if __name__ == "__main__":
    main()
