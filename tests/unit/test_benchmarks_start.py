"""Every benchmark under bench/ loads from a fresh checkout: its imports resolve (a move of the test support
modules once left one unable to import them). Loaded as a module, not run: nothing is measured or written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT

BENCHMARKS = sorted((ROOT / "bench").glob("*.py"))
LOAD = (
    "import importlib.util, sys; spec = importlib.util.spec_from_file_location('benchmark', sys.argv[1]); "
    "module = sys.modules['benchmark'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
    "print('loaded')"
)


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_the_benchmark_loads(script):
    result = subprocess.run([sys.executable, "-c", LOAD, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "loaded", result.stderr[-2000:]
