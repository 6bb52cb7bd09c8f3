"""Test-suite settings shared by every directory."""
import gc
import os
import sys

import pytest
from hypothesis import settings

# Property-based tests explore the same examples on every run (no flaky CI, no example
# database written into the tree); each test may still ask for more examples.
settings.register_profile("tinygraph", derandomize=True, database=None, deadline=None)
settings.load_profile("tinygraph")

# pytest runs with --import-mode=importlib (setup.cfg), which puts no test directory on
# sys.path: this one holds the helpers the test modules of every directory share (_fuzz.py).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def _grad_mode_is_left_as_found():
    """A test that leaves recording off (or a scope or anomaly mode on) in the main thread
    would silently change every test after it: fail that test instead, and put it back."""
    yield
    from tinygraph.grad_mode import _state
    left = {name: getattr(_state, name) for name in ("grad_enabled", "anomaly", "scope")}
    expected = {"grad_enabled": True, "anomaly": False, "scope": None}
    if left != expected:
        _state.grad_enabled, _state.anomaly, _state.scope = True, False, None
        pytest.fail(f"the test left tinygraph's per-thread state at {left}; expected {expected}")


@pytest.fixture
def collections_see_only_new_objects():
    """For the stateful fuzzes, which call gc.collect() hundreds of times: each full collection
    walks every object the process holds, in the whole suite also what earlier tests left
    (mypy run in-process once made the engine fuzz take 264 s instead of 12). Older objects
    are frozen for the test, so collections walk what the test makes."""
    gc.freeze()
    yield
    gc.unfreeze()
