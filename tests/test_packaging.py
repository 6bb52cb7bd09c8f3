"""What the wheel and the sdist carry, read from setup.cfg and MANIFEST.in (building them
needs setuptools from PyPI; these globs are what decides)."""
from __future__ import annotations

import configparser
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    return config


def test_the_wheel_carries_the_data_and_the_type_markers():
    """Only [options.package_data] puts non-Python files in the wheel (include_package_data is
    off): the shipped digits and their licence note, and py.typed in each package."""
    config = _setup_cfg()
    assert config["options"]["include_package_data"].strip() == "False"
    shipped = set()
    for package, patterns in config["options.package_data"].items():
        for pattern in patterns.replace("\n", ",").split(","):
            if pattern.strip():
                found = glob.glob(os.path.join(ROOT, package, pattern.strip()))
                assert found, f"package_data {package}: {pattern.strip()} matches nothing"
                shipped |= {os.path.relpath(f, ROOT) for f in found}
    needed = {os.path.join("nn", "datasets", "digits.npz"),
              os.path.join("nn", "datasets", "README.txt"),
              *(os.path.join(p, "py.typed") for p in ("tinygraph", "nn", "activations"))}
    assert needed <= shipped, needed - shipped


def test_the_sdist_carries_what_runs_the_tests_and_examples():
    lines = open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8").read().splitlines()
    grafted = {line.split()[1] for line in lines if line.startswith("graft ")}
    assert {"tests", "examples", "docs", "benchmarks"} <= grafted
