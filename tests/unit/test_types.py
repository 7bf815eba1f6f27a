"""mypy over the whole package, strict where pyproject.toml says so ([tool.mypy])."""

from __future__ import annotations

import subprocess

from helpers import ROOT


def test_mypy_finds_no_type_error():
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
