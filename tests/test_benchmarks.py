"""The benchmark scripts run end to end (tiny sizes; what they print is checked, not timed).

Timing belongs to the scripts themselves (docs/performance.md); these tests only make sure
that a change to the library or to ``benchmarks/_common.py`` does not break them, and that
the correctness checks they make before timing (gradients agree, dtypes kept) still pass.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """A benchmark script's run, whatever its exit status."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                          capture_output=True, text=True, timeout=600, check=False, **kwargs)


def run(script: str, *args: str) -> str:
    """The output of a benchmark script's run, which must succeed."""
    done = run_script(script, *args)
    assert done.returncode == 0, f"{script} {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def in_benchmarks(code: str) -> str:
    """What ``python -c code`` prints, run in benchmarks/ (the scripts import as modules)."""
    return subprocess.run([sys.executable, "-c", code], cwd=os.path.join(ROOT, "benchmarks"),
                          capture_output=True, text=True, check=True).stdout.strip()


def test_overhead_prints_the_target_for_every_kind():
    out = run("overhead.py", "--nodes", "20", "--repeat", "1")
    targets = out.split("target:")[1]
    for kind in ("x * c", "x + c", "tanh", "x * w", "mix"):
        assert f"\n  {kind}" in targets
    assert targets.count("(bare engine ") == 5 and "bare f+b" in out


def test_mlp_step_checks_gradients_and_dtypes_before_timing():
    out = run("mlp_step.py", "--batches", "1,3", "--dtypes", "float32", "--repeat", "1",
              "--min-time", "0.001", "--pairs", "2", "--peak-size", "128")
    assert "graph and manual gradients agree on the first step" in out
    assert "float32 stays float32 (params, grads, loss, caches) asserted  met" in out
    assert "paired ratios" in out and "float32 B=3" in out


def test_mlp_step_and_mlp_alone_report_the_blas_phase_probe():
    # Probed where numpy's BLAS has several threads and threadpoolctl can switch it to one;
    # otherwise the scripts must say why not (CI has no threadpoolctl).
    out = run("mlp_step.py", "--batches", "2", "--dtypes", "float32", "--repeat", "1",
              "--min-time", "0.001", "--pairs", "2", "--peak-size", "128")
    assert "BLAS speedup" in out.split("paired ratios")[1].split("\n")[1]
    assert "BLAS speedup: a (64, 784) @ (784, 256)" in out or "BLAS speedup: not probed (" in out
    out = run("mlp_alone.py", "--processes", "1", "--batches", "2", "--repeat", "1",
              "--min-time", "0.001", "--threads", "1")
    assert "BLAS speedup: not probed (" in out


def test_a_slow_blas_phase_marks_the_verdicts_as_not_representative(monkeypatch, capsys):
    # The slow 2-thread phase of the reference VM once made mlp_step.py print "met" for a
    # target that was not: the probe must turn that into a warning.
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import _common
        import mlp_step
    finally:
        sys.path.pop(0)
    assert _common.slow_phase([1.85, None, 1.82]) is None
    assert _common.slow_phase([1.85, 1.34]) == 1.34
    assert _common.slow_phase([None, None]) is None
    monkeypatch.setattr(_common, "blas_speedup", lambda: 1.3)
    monkeypatch.setattr(sys, "argv", ["mlp_step.py", "--batches", "64", "--dtypes", "float32",
                                      "--repeat", "1", "--min-time", "0.001", "--pairs", "2",
                                      "--peak-size", "128"])
    mlp_step.main()
    out = capsys.readouterr().out
    verdict = [ln for ln in out.splitlines() if "graph <= 1.10x manual" in ln][0]
    assert "measured in a slow BLAS phase (speedup 1.30x): not representative, rerun" in verdict
    assert "1.30x/1.30x" in out


def test_mlp_step_refuses_too_few_pairs():
    done = run_script("mlp_step.py", "--pairs", "1")
    assert done.returncode == 2 and "--pairs must be at least 2" in done.stderr


def test_mlp_alone_runs_every_contender_in_its_own_processes():
    out = run("mlp_alone.py", "--processes", "2", "--batches", "2", "--repeat", "1",
              "--min-time", "0.001")
    assert "median over the processes not in a slow phase" in out
    for name in ("graph", "graph pub", "manual"):
        assert f"{name}: ms per step in each process" in out
    assert "float32 B=2" in out


def test_memory_reports_the_saved_bytes_against_the_formula_with_verdicts():
    out = run("memory.py")
    assert "(saved-params)/spec" in out
    targets = out.split("targets:")[1].splitlines()
    saved = [ln for ln in targets if "saved for backward (without the parameters)" in ln]
    assert len(saved) == 6 and all(ln.endswith("0.762x  met") for ln in saved), saved
    assert any(ln.startswith("  inference under no_grad saves nothing") and ln.endswith(
        ": 0 B  met") for ln in targets), targets


@pytest.mark.parametrize("script, args", [
    ("scaling.py", ["--max-nodes", "1000"]),
    ("swiglu.py", ["--rows", "8", "--repeat", "1", "--min-time", "0.001"]),
])
def test_other_scripts_run(script, args):
    assert "load average at the end" in run(script, *args)


def test_the_bare_engine_of_overhead_py_computes_true_gradients():
    # overhead.py's floor column is only a floor if the engine it times is correct
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import _bare_engine as bare
    finally:
        sys.path.pop(0)
    import numpy as np
    x0 = np.array([0.3, -1.2, 2.0])
    x = bare.Value(x0)
    a = x * 2.0 + 1.0
    out = a.tanh() * a + x              # fan-out: a twice, x twice
    out.backward(np.ones(3))
    t = np.tanh(2 * x0 + 1)
    expected = 2 * (1 - t * t) * (2 * x0 + 1) + 2 * t + 1
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_instructions_py_children_run_every_variant_and_the_parent_needs_valgrind():
    # The counting itself needs valgrind (not installed in CI): here each variant's step must
    # run, the summary line must parse, and a missing valgrind must be said, not crash.
    for variant in ("manual", "graph", "graph, direct", "graph, tg.relu", "graph, no locks"):
        run("instructions.py", "--child", variant, "--batch", "2", "--steps", "2")
    missing = run_script("instructions.py", "--valgrind", "no-such-valgrind-here")
    assert missing.returncode == 1        # counted nothing: not a success for a wrapper script
    assert "'no-such-valgrind-here' not found; install valgrind" in missing.stderr
    parsed = in_benchmarks("import instructions as i; print(i.parse_instructions("
                           "'==7== Command: python\\n==7== I   refs:      3,260,424\\n'))")
    assert parsed == "3260424"
    done = run_script("instructions.py", "--steps", "5")
    assert done.returncode == 2 and "--steps N1,N2 needs two numbers" in done.stderr


def test_instructions_py_only_takes_names_that_hold_commas():
    # "graph, no locks" must not be split into "graph" and "no locks"
    done = run_script("instructions.py", "--only", "graph", "--only", "graph, no locks",
                      "--valgrind", "no-such-valgrind-here")
    assert done.returncode == 1 and "not found; install valgrind" in done.stderr, done.stderr
    picked = in_benchmarks("import instructions as i; print(i.contenders("
                           "['manual,graph', 'graph, direct', 'graph']))")
    assert picked == "('manual', 'graph', 'graph, direct')"
    bad = run_script("instructions.py", "--only", "graph,nope")
    assert bad.returncode == 2 and "unknown contender(s) ['nope']" in bad.stderr


@pytest.mark.parametrize("script, args, message", [
    ("mlp_step.py", ["--threads", "0"], "argument --threads: expected a whole number >= 1, got 0"),
    ("mlp_step.py", ["--repeat", "0"], "argument --repeat: expected a whole number >= 1"),
    ("mlp_step.py", ["--peak-size", "-3"], "argument --peak-size: expected a whole number >= 1"),
    ("mlp_step.py", ["--batches", "1,"], "argument --batches: expected comma-separated whole"),
    ("mlp_step.py", ["--batches", "abc"], "argument --batches: expected a whole number >= 1, "
                                          "got 'abc'"),
    ("mlp_step.py", ["--dtypes", "float16"], "argument --dtypes: unknown dtype(s) ['float16']; "
                                             "choose from float32, float64"),
    ("mlp_alone.py", ["--batches", "0"], "argument --batches: expected a whole number >= 1, got 0"),
    ("mlp_alone.py", ["--dtypes", "int32"], "argument --dtypes: unknown dtype(s) ['int32']"),
    ("mlp_alone.py", ["--threads", "-1"], "argument --threads: expected a whole number >= 1"),
    ("swiglu.py", ["--rows", "0"], "argument --rows: expected a whole number >= 1, got 0"),
    ("swiglu.py", ["--repeat", "0"], "argument --repeat: expected a whole number >= 1"),
    ("overhead.py", ["--nodes", "0"], "argument --nodes: expected a whole number >= 1, got 0"),
    ("overhead.py", ["--repeat", "-2"], "argument --repeat: expected a whole number >= 1"),
    ("hotspots.py", ["--top", "0"], "argument --top: expected a whole number >= 1, got 0"),
    ("hotspots.py", ["--threads", "0"], "argument --threads: expected a whole number >= 1"),
    ("scaling.py", ["--max-nodes", "999"], "--max-nodes must be at least 1000"),
    ("instructions.py", ["--batch", "0"], "argument --batch: expected a whole number >= 1"),
    ("mlp_step.py", ["--min-time", "-1"], "argument --min-time: expected a finite number of "
                                          "seconds >= 0, got -1"),
    ("mlp_alone.py", ["--min-time", "inf"], "argument --min-time: expected a finite number"),
    ("swiglu.py", ["--min-time", "soon"], "argument --min-time: expected a number of seconds "
                                          ">= 0, got 'soon'"),
])
def test_bad_option_values_are_usage_errors_that_name_the_option(script, args, message):
    # before: tracebacks from deep inside (StatisticsError, ZeroDivisionError, torch's
    # set_num_threads, a float16 model against a float64 PyTorch one), or a run with a
    # false verdict (overhead.py --nodes -5: "met" at -19 us; scaling.py: "flat" from no rows)
    done = run_script(script, *args,
                      env={**os.environ, "TINYGRAPH_BENCH_NO_TORCH": "1"})   # (no torch import)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr


def test_scaling_with_one_graph_size_does_not_judge_linearity():
    out = run("scaling.py", "--max-nodes", "1000")
    assert "one graph size only" in out and "linearity not judged" in out
    assert "-> linear" not in out


def test_memory_has_help_instead_of_running():
    out = run("memory.py", "--help")
    assert out.startswith("usage: memory.py") and "KiB" not in out


# -- the logic behind the verdicts (no timing: fake clocks and made-up ratios) ------------
@pytest.fixture
def bench():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import _common
        import mlp_alone
        import mlp_step
        import scaling
    finally:
        sys.path.pop(0)
    return _common, mlp_step, mlp_alone, scaling


def test_paired_verdict_reads_the_median_and_flags_doubtful_readings(bench):
    C = bench[0]
    P = C.Paired
    assert C.paired_verdict(P(1.05, 1.03, 1.08, 1, 1), 1.10) == "met"
    assert C.paired_verdict(P(1.15, 1.12, 1.18, 1, 1), 1.10) == "NOT met (by 5%)"
    assert C.paired_verdict(P(1.08, 1.05, 1.12, 1, 1), 1.10) == "met, within the quartiles"
    assert C.paired_verdict(P(1.12, 1.09, 1.14, 1, 1), 1.10) == \
        "NOT met (by 2%), within the quartiles"
    spread = C.paired_verdict(P(0.9, 0.21, 3.83, 1, 1), 1.0)
    assert spread.startswith("met, within the quartiles; unreliable: the quartiles are 18.24x "
                             "apart (more than 1.3x")
    slow = C.paired_verdict(P(0.3, 0.29, 0.31, 1, 1), 0.5, slow=1.34)
    assert slow == ("met; measured in a slow BLAS phase (speedup 1.34x): not representative, "
                    "rerun")
    assert C.paired_verdict(P(0.5, 0.49, 0.51, 1, 1), 0.5).startswith("met")   # <= the limit


def test_verdict_of_median_and_best_sample(bench):
    C = bench[0]
    assert C.verdict(2.5, 2.4, 3.0) == "met"
    assert C.verdict(4.5, 4.0, 3.0) == "NOT met (by 33%)"
    assert C.verdict(3.2, 2.9, 3.0).startswith("uncertain: the median and the best samples "
                                               "disagree")


def test_paired_ratio_and_compare_on_a_fake_clock(bench, monkeypatch):
    C = bench[0]
    cost = {}
    order = []

    def fake_loop(fn, number):
        order.append(fn)
        return cost[fn] * number

    def a():
        pass

    def b():
        pass

    cost.update({a: 3.0, b: 2.0})
    monkeypatch.setattr(C, "_loop", fake_loop)
    monkeypatch.setattr(C, "calibrate", lambda fn, min_time: 4)
    pair = C.paired_ratio(a, b, pairs=6, warmup=0)
    assert (pair.median, pair.q1, pair.q3, pair.a, pair.b) == (1.5, 1.5, 1.5, 3.0, 2.0)
    assert order[:4] == [a, b, b, a]                # ABBA: neither always runs first
    # quartiles stay between the smallest and largest ratio, however few the pairs (a run
    # of 2 pairs printed quartiles -0.67 and 5.95, "quartiles -8.92x apart")
    times = iter([3.0, 2.0, 1.0, 5.0])             # ABBA: ratios 3/2 and 5/1

    def two_ratios(fn, number):
        return next(times) * number

    monkeypatch.setattr(C, "_loop", two_ratios)
    pair = C.paired_ratio(a, b, pairs=2, warmup=0)
    assert 1.5 <= pair.q1 < pair.median < pair.q3 <= 5.0
    monkeypatch.setattr(C, "_loop", fake_loop)
    # compare: every round takes each contender once, in an order shuffled every round, so
    # that none mostly follows the same one (a rotation of a fixed order kept predecessors)
    fns = {name: (lambda: None) for name in "pqrst"}
    for i, fn in enumerate(fns.values()):
        cost[fn] = float(i + 1)
    order.clear()
    result = C.compare(fns, repeat=8, warmup=0)
    assert {n: s.median for n, s in result.items()} == {"p": 1, "q": 2, "r": 3, "s": 4, "t": 5}
    rounds = [order[i:i + 5] for i in range(0, 40, 5)]
    assert all(sorted(map(id, r)) == sorted(map(id, fns.values())) for r in rounds)
    assert len({tuple(map(id, r)) for r in rounds}) > 2
    before = {}
    for prev, fn in zip(order, order[1:]):
        before.setdefault(fn, set()).add(prev)
    assert all(len(p) >= 3 for p in before.values()), "each contender follows several others"


def test_the_step_flops_of_the_spec_network(bench):
    mlp_step = bench[1]
    # forward 2·(784·256 + 256·128 + 128·10) = 469,504; backward twice that without the
    # first layer's dL/dX (2·784·256 = 401,408): 1,007,104 per sample
    assert mlp_step.step_flops(1) == 1_007_104 and mlp_step.step_flops(64) == 64 * 1_007_104


def test_mlp_step_judges_the_pytorch_targets_through_the_public_api_too(bench, capsys,
                                                                        monkeypatch):
    mlp_step = bench[1]
    monkeypatch.setattr(sys, "argv", ["mlp_step.py", "--batches", "1,64", "--dtypes", "float32",
                                      "--repeat", "1", "--min-time", "0.001", "--pairs", "2",
                                      "--peak-size", "128"])
    mlp_step.main()
    out = capsys.readouterr().out
    targets = out.split("\ntargets")[1].splitlines()
    public = [ln for ln in targets if "the same through the public loss(X, y)" in ln]
    assert len(public) == 2                 # batch 64 (no slower) and batch 1 (0.5x)
    if bench[0].torch is None:
        assert all("not measured (PyTorch not installed: skipped)" in ln for ln in public)
    else:
        assert all(re.search(r"\d+\.\d\dx \[\d+\.\d\d-\d+\.\d\d\]", ln) for ln in public)
        assert "graph pub/torch" in out


def test_mlp_alone_leaves_slow_processes_out_of_its_medians(bench):
    mlp_alone = bench[2]
    runs = [{"k": 1.0}, {"k": 2.0}, {"k": 9.0}]
    assert mlp_alone.fast_median(runs, [{"k": 1.9}, {"k": None}, {"k": 1.2}], "k") == (1.5, 2)
    assert mlp_alone.fast_median(runs, [{"k": 1.0}] * 3, "k") == (None, 0)


def test_scaling_reads_linear_from_the_log_log_slope(bench):
    scaling = bench[3]
    nodes = [1e3, 1e4, 1e5, 1e6]
    assert scaling.loglog_slope(nodes, [2e-6 * n for n in nodes]) == pytest.approx(1.0)
    n_log_n = scaling.loglog_slope(nodes, [2e-7 * n * math.log(n) for n in nodes])
    assert 1.09 < n_log_n < 1.11 and n_log_n > scaling.MAX_LINEAR_SLOPE
    # the per-node growth recorded in docs/performance.md (1.22x, 1.28x over 3 decades)
    assert scaling.loglog_slope(nodes, [n * f for n, f in zip(nodes, (1, 1.06, 1.19, 1.28))]) \
        <= scaling.MAX_LINEAR_SLOPE
