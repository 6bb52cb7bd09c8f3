"""What tinygraph needs of numpy, checked when tinygraph is imported, and of its sibling
packages (``nn``, ``activations``), checked when they are used together."""
from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np


def require_numpy2(version: str) -> None:
    """float32 stays float32 only under numpy 2's promotion rules (NEP 50): under numpy 1 a
    float32 0-d result times a Python float is float64, silently. pip enforces the same
    floor (setup.cfg); this names it for a checkout run without installing."""
    if int(version.split(".")[0]) < 2:
        raise ImportError(f"tinygraph needs numpy 2.0 or newer, found numpy {version}: "
                          f"pip install -U 'numpy>=2.0'")


require_numpy2(np.__version__)


def require_sibling(name: str, who: str) -> ModuleType:
    """Import tinygraph's own ``nn`` or ``activations`` package, or say what hides it.

    The three packages are installed side by side under plain names, so a learner's own
    ``activations.py`` or ``nn.py`` (in the current directory, which Python searches first)
    or another distribution's package of that name would be imported instead, and fail
    later with "module 'activations' has no attribute 'get'". Each sibling marks itself
    with ``_PROJECT = "tinygraph"``."""
    module = importlib.import_module(name)
    if getattr(module, "_PROJECT", None) == "tinygraph":
        return module
    found = (module.__file__ if getattr(module, "__file__", None) else
             f"a folder without __init__.py ({', '.join(getattr(module, '__path__', []))})")
    raise ImportError(
        f"{who} needs tinygraph's {name!r} package, but `import {name}` found {found}: a "
        f"file or folder of that name in the current directory (or elsewhere on sys.path) "
        f"hides it, or another package named {name!r} was installed over it. Rename yours "
        f"(e.g. my_{name}.py), or run from another directory; after another package's "
        f"install, reinstall tinygraph (pip install --force-reinstall --no-deps <tinygraph>)")
