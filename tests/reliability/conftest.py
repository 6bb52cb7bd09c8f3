"""pytest runs with --import-mode=importlib (setup.cfg), which does not put test directories
on sys.path: add this one so the tests can import the shared table in _error_cases.py."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
