"""The layer rules of the package (pyproject.toml, [tool.importlinter]) hold, and they do bite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT

LINT_IMPORTS = ROOT / ".venv" / "bin" / "lint-imports"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_layer_contract_is_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        (
            "backends/base.py",
            "from provisioner.report import collect",
            "Backends import no CLI, engine, evidence or releases",
        ),
        ("cli/common.py", "from provisioner.site import load", "The command line talks to the engine only"),
        ("site/model.py", "from provisioner.engine import operations", "The pipeline runs one way, top to bottom"),
        ("conformance/verify.py", "from provisioner.report import pack", "No import cycles between sibling packages"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, forbidden_import, contract):
    shutil.copytree(ROOT / "provisioner", tmp_path / "provisioner", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint_imports(tmp_path).returncode == 0  # the copy is as clean as the original
    target = tmp_path / "provisioner" / module
    text = target.read_text()
    head, _, body = text.partition("\nfrom __future__ import annotations\n")
    target.write_text(f"{head}\nfrom __future__ import annotations\n\n{forbidden_import}  # noqa\n{body}")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
