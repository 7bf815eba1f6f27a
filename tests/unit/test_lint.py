"""Code quality gates of the project: ruff on the Python, ansible-lint's production profile on playbooks and roles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ruff_is_clean():
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "provisioner", "tests", "bench", "tools", "plugins"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_is_clean():
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--nocolor", "playbooks", "roles"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "ANSIBLE_NOCOLOR": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
