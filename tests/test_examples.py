"""Run every example script in its ``--quick`` mode, as a user would, and check its summary.

Each example runs in a subprocess (``sys.executable examples/NAME.py --quick``) from the
repository root, with the repository root on PYTHONPATH so the scripts import ``nn`` and
``tinygraph`` even without an install.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
TIMEOUT = 120


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # One BLAS thread: multi-threaded BLAS is much slower than one thread on a busy machine,
    # and these examples use small matrices anyway.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=TIMEOUT)


def check(result: subprocess.CompletedProcess, code: int, *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, (
        f"exit code {result.returncode}, expected {code}\n--- stdout ---\n{result.stdout}"
        f"\n--- stderr ---\n{result.stderr}")
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in output, f"{text!r} not in the output:\n{output}"


# name -> text the --quick run must print (besides exiting with 0)
EXPECTED = {
    "xor": ["manual MLP: 4/4 correct", "graph  MLP: 4/4 correct", "the curves agree", "SUCCESS"],
    "spiral": ["train accuracy", "test accuracy", "SUCCESS"],
    "sine_regression": ["test MSE", "prediction", "SUCCESS"],
    "digits": ["test accuracy", "confusion matrix", "recall", "autodiff AGREE", "SUCCESS"],
    "crosscheck": ["autodiff AGREE", "layers with a MISMATCH: [2]",
                   "layers with a MISMATCH: [1, 2, 3]", "SUCCESS"],
    "custom_op": ["gradcheck PASSED", "gradcheck FAILED", "SoftplusBackward", "SUCCESS"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_quick(name: str) -> None:
    check(run_example(name, "--quick"), 0, *EXPECTED[name])


def test_every_example_is_tested() -> None:
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED) | {"fashion_mnist"}
    readme = (EXAMPLES / "README.md").read_text()
    for name in scripts:
        assert f"examples/{name}.py" in readme, f"{name}.py is missing from examples/README.md"


def test_fashion_mnist_quick() -> None:
    """Trains when Debian's dataset-fashion-mnist is installed, else explains and exits 2."""
    result = run_example("fashion_mnist", "--quick")
    if FASHION_MNIST_DIR.is_dir():
        check(result, 0, "[784, 256, 128, 10]", "test accuracy", "SUCCESS")
    else:
        check(result, 2, "dataset-fashion-mnist")


def test_fashion_mnist_missing_data(tmp_path: Path) -> None:
    """The missing-data path, whatever is installed: the loader's message and exit code 2."""
    check(run_example("fashion_mnist", "--quick", "--data", str(tmp_path / "nowhere")), 2,
          "dataset-fashion-mnist", "--data DIR")


def test_spiral_plot(tmp_path: Path) -> None:
    """--plot writes the picture when matplotlib is installed, else says why not."""
    out = tmp_path / "spiral.png"
    result = run_example("spiral", "--quick", "--plot", str(out))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        check(result, 0, "matplotlib is not installed")
    else:
        check(result, 0, "decision boundary saved")
        assert out.stat().st_size > 1000


def test_spiral_plot_into_a_missing_folder_is_refused_before_training(tmp_path: Path) -> None:
    result = run_example("spiral", "--quick", "--plot", str(tmp_path / "nowhere" / "s.png"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert "train accuracy" not in result.stdout


def test_the_examples_run_without_docstrings() -> None:
    """``python -OO`` strips docstrings (``__doc__`` is None); the examples' argument parsers
    take their description from it, and the library must not need its docstrings either."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    for name in sorted(EXPECTED) + ["fashion_mnist"]:
        result = subprocess.run([sys.executable, "-OO", str(EXAMPLES / f"{name}.py"), "--help"],
                                cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT)
        check(result, 0, "usage:")
    check(subprocess.run([sys.executable, "-OO", str(EXAMPLES / "xor.py"), "--quick"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=TIMEOUT),
          0, *EXPECTED["xor"])
