"""What a type checker (and so an editor) sees of tinygraph: the public API has the types a
user expects, and the README's snippets and the examples type-check as they are written.

mypy and pyright (the checker inside VS Code) run here; the packages ship ``py.typed`` (PEP
561) so that a user's checker reads these annotations instead of treating tinygraph as
untyped.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tinygraph import Tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def mypy(tmp_path_factory):
    """Run mypy on files with the repository's packages importable; return its report.
    Errors inside the packages are reported only for those given as paths
    (``--follow-imports=silent``). mypy runs in a process of its own: run in this one, it
    left a heap so large that every later ``gc.collect()`` of the suite took ~0.5 s."""
    cache = tmp_path_factory.mktemp("mypy-cache")

    def run(paths, *flags):
        done = subprocess.run([sys.executable, "-m", "mypy", *paths, "--follow-imports=silent",
                               "--cache-dir", str(cache), "--no-error-summary",
                               "--show-error-codes", *flags],
                              env={**os.environ, "MYPYPATH": ROOT}, capture_output=True,
                              text=True, timeout=600)
        return done.stdout + done.stderr, done.returncode
    return run


def test_the_public_api_has_the_types_a_user_expects(mypy):
    # Every line of public_api.py is an assert_type a regression would fail; --strict also
    # fails a call to an unannotated tinygraph function (an Any a user's checker cannot
    # see through). Not checked: returning numpy's Any (its stubs type `a * a` as Any), and
    # a bare np.ndarray in the file's own annotations (numpy 2.2's stubs, on Python 3.10,
    # want its type arguments; 2.3's have defaults).
    report, status = mypy([os.path.join(ROOT, "tests", "typecheck", "public_api.py")],
                          "--strict", "--disable-error-code", "no-any-return",
                          "--disable-error-code", "type-arg")
    assert status == 0 and report == "", report


def test_the_packages_themselves_type_check(mypy):
    """mypy's default checks over tinygraph, nn and activations themselves (the tests above
    judge what a user sees; this keeps the annotations inside true as the code changes).
    Not --warn-unused-ignores: numpy's stubs differ between versions (2.2 lets setflags
    take its flag positionally, 2.4 does not), so an ignore needed on one is unused on
    another."""
    report, status = mypy([os.path.join(ROOT, package)
                           for package in ("tinygraph", "nn", "activations")])
    assert status == 0 and report == "", report


def test_pyright_which_editors_run_sees_the_same_types(tmp_path):
    """Pyright (VS Code's Pylance) resolves imports and overrides differently from mypy: it
    read ``from . import tensor`` as the function tinygraph.tensor (Function.apply was Any)
    and called a typed ``forward(self, x)`` an incompatible override of Module.forward.
    basedpyright is pyright packaged for PyPI; "standard" is pyright's default mode."""
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(
        {"typeCheckingMode": "standard", "extraPaths": [ROOT],
         "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}"}))
    shutil.copy(os.path.join(ROOT, "tests", "typecheck", "public_api.py"), tmp_path)
    run = subprocess.run([sys.executable, "-m", "basedpyright", "--pythonpath", sys.executable,
                          "--outputjson", "public_api.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    problems = [f"line {d['range']['start']['line'] + 1}: {d['message']}"
                for d in report["generalDiagnostics"] if d["severity"] in ("error", "warning")]
    assert problems == [] and report["summary"]["filesAnalyzed"] == 1, "\n".join(problems)


def test_the_readme_snippets_and_the_examples_type_check(mypy, tmp_path):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    snippets = tmp_path / "readme_snippets.py"
    snippets.write_text("\n".join(re.findall(r"```python\n(.*?)```", text, re.S)))
    examples = sorted(os.path.join(ROOT, "examples", f)
                      for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py"))
    assert len(examples) >= 5
    # Written as a learner writes them: `p -= lr * p.grad` without first checking that the
    # gradient is not None (strict Optional checking would ask for that, as it does of
    # PyTorch code), and crosscheck.py plants bugs by replacing a layer's backward method.
    report, status = mypy([str(snippets), *examples], "--no-strict-optional",
                          "--disable-error-code", "method-assign")
    assert status == 0 and report == "", report


def _class_body_names(node: ast.ClassDef) -> tuple[set[str], set[str]]:
    """(names the class body defines, names its ``if TYPE_CHECKING:`` block declares)."""
    defined: set[str] = set()
    declared: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.If) and ast.unparse(item.test) == "TYPE_CHECKING":
            for decl in item.body:
                if isinstance(decl, ast.FunctionDef):
                    declared.add(decl.name)
                elif isinstance(decl, ast.Assign):
                    declared |= {n.id for target in decl.targets for n in ast.walk(target)
                                 if isinstance(n, ast.Name)}
        elif isinstance(item, ast.FunctionDef):
            defined.add(item.name)
        elif isinstance(item, ast.Assign):
            defined |= {n.id for target in item.targets for n in ast.walk(target)
                        if isinstance(n, ast.Name)}
    return defined, declared


def test_every_operator_and_method_attached_to_tensor_is_declared_for_type_checkers():
    """The operators and op methods are attached to Tensor after the class (tinygraph.ops
    imports Tensor); the class declares each under TYPE_CHECKING. An op attached without a
    declaration is invisible to editors; a declaration without an op is a lie."""
    # (the module: ``tinygraph.tensor`` as an attribute is the function tinygraph.tensor)
    tree = ast.parse(inspect.getsource(importlib.import_module("tinygraph.tensor")))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    defined, declared = _class_body_names(cls)
    attached = {name for name, value in vars(Tensor).items()
                if name not in defined and (callable(value) or isinstance(value, property))}
    assert len(attached) > 40
    assert attached - declared == set(), "attached to Tensor but not declared"
    assert declared - attached == set(), "declared for type checkers but not attached"

