"""The README's Python snippets run, in order, as a reader would paste them, and print what
the README says they print."""
from __future__ import annotations

import contextlib
import io
import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_readme_snippets_run_in_order_and_say_what_it_says(tmp_path, monkeypatch):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)                # (the snippets write pictures and a model)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), \
            np.errstate(over="raise", invalid="raise", divide="raise"):   # (no NaN trouble)
        for i, block in enumerate(blocks):
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    out = printed.getvalue()
    assert "gradcheck PASSED: 9 elements checked" in out
    assert "manual backprop and autodiff AGREE" in out
    found = re.search(r"loss (\d\.\d+), test accuracy (\d\.\d+)", out)
    assert found and float(found.group(1)) < 0.5 and float(found.group(2)) > 0.85, out[-500:]
    assert "['block.0.W', 'block.0.b']" in out          # the residual module's parameters
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".svg") == \
        ["backward.svg", "forward.svg"]
