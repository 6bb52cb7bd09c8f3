"""What tinygraph checks of its surroundings: a learner's own ``activations.py`` or ``nn.py``
(or another distribution's package of that name) hiding tinygraph's sibling packages is
named, instead of failing later with "module 'activations' has no attribute 'get'"."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import activations
import nn
from tinygraph._requirements import require_sibling

ROOT = Path(__file__).resolve().parents[2]


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # Python puts the current directory first on sys.path for -c and -m: as a user's shell
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_siblings_found_here_are_tinygraphs():
    assert require_sibling("activations", "test") is activations
    assert require_sibling("nn", "test") is nn


def test_json_is_not_taken_for_a_sibling():
    with pytest.raises(ImportError, match=r"test needs tinygraph's 'json' package, but "
                                          r"`import json` found .*json.*Rename yours"):
        require_sibling("json", "test")


def test_a_learners_activations_py_is_named_when_nn_is_imported(tmp_path):
    (tmp_path / "activations.py").write_text("def relu(x):\n    return max(x, 0)\n")
    run = _python(tmp_path, "-c", "import nn")
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: nn needs tinygraph's 'activations' package, but "
                           f"`import activations` found {tmp_path / 'activations.py'}"), last
    assert "Rename yours (e.g. my_activations.py)" in last


def test_a_folder_without_init_is_named_as_such(tmp_path, monkeypatch):
    # (what is left of another distribution's activations package once pip uninstalled it
    # over tinygraph's: a namespace package; a name of its own here, so as not to disturb
    # the activations package this process has imported)
    (tmp_path / "tg_namespace_probe").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="found a folder without __init__.py"):
        require_sibling("tg_namespace_probe", "test")


@pytest.mark.parametrize("shadow", ["nn.py", "activations.py"])
def test_the_command_names_the_file_that_hides_a_sibling(tmp_path, shadow):
    (tmp_path / shadow).write_text("x = 1\n")
    run = _python(tmp_path, "-m", "tinygraph", "graph", "--layers", "4,3,2",
                  "--activations", "relu,softmax", "--out", "g.svg")
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("tinygraph: ") and str(tmp_path / shadow) in run.stderr
    assert not (tmp_path / "g.svg").exists()


def test_the_command_runs_where_nothing_hides_them(tmp_path):
    run = _python(tmp_path, "-m", "tinygraph", "graph", "--layers", "4,3,2",
                  "--activations", "relu,softmax", "--out", "g.svg")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "g.svg").stat().st_size > 500


@pytest.mark.parametrize("shadow", ["nn.py", "activations.py"])
def test_the_installed_command_is_not_hidden_by_files_in_the_current_folder(tmp_path, shadow):
    # The console script starts Python with its own folder first on sys.path, not the current
    # one (README, docs/reliability.md): a learner's nn.py there hides nothing from it.
    script = Path(sys.executable).with_name("tinygraph")
    if not script.exists():
        pytest.skip(f"no installed tinygraph command beside {sys.executable} (an install with "
                    f"pip install -e . makes one)")
    (tmp_path / shadow).write_text("x = 1\n")
    run = subprocess.run([str(script), "graph", "--layers", "4,3,2", "--activations",
                          "relu,softmax", "--out", "g.svg"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "g.svg").stat().st_size > 500
