"""What tinygraph needs of numpy, checked when tinygraph is imported."""
from __future__ import annotations

import numpy as np


def require_numpy2(version: str) -> None:
    """float32 stays float32 only under numpy 2's promotion rules (NEP 50): under numpy 1 a
    float32 0-d result times a Python float is float64, silently. pip enforces the same
    floor (setup.cfg); this names it for a checkout run without installing."""
    if int(version.split(".")[0]) < 2:
        raise ImportError(f"tinygraph needs numpy 2.0 or newer, found numpy {version}: "
                          f"pip install -U 'numpy>=2.0'")


require_numpy2(np.__version__)
