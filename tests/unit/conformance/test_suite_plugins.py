"""The conformance suite runs with exactly the pytest plugins verify names (issue 20, item 5): its own and xdist.
A plugin that happens to be installed beside it (this venv has faker's, hypothesis's, testinfra's and
pytest-timeout's) is not loaded: it must not touch what verify reports, and each worker would otherwise import and
assertion-rewrite it (about 2 s of CPU per worker when Python writes no bytecode)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers import EXAMPLE

from provisioner.conformance.verify import suite_command, suite_environment
from provisioner.site.load import load_site

AUTOLOADED_HERE = ("faker", "hypothesis", "testinfra.plugin", "pytest_timeout")


def registered_plugins(tmp_path: Path, workers: int, env: dict[str, str]) -> set[str]:
    """Module names of the plugins pytest registers for the suite's command line (collection only: no host)."""
    cmd = suite_command(load_site(EXAMPLE), tmp_path, workers=workers)
    if workers > 1:
        cmd[cmd.index("-n") + 1] = "0"  # load xdist, start no worker
    cmd += ["--collect-only", "--trace-config"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120).stdout
    return set(re.findall(r"PLUGIN registered: <module '([^']+)'", out))


@pytest.mark.parametrize("workers", [1, 4])
def test_only_the_named_plugins_are_loaded(tmp_path: Path, workers: int):
    plugins = registered_plugins(tmp_path, workers, suite_environment())
    assert "provisioner.conformance.plugin" in plugins
    assert ("xdist.plugin" in plugins) == (workers > 1)
    assert not [p for p in plugins if p.startswith(AUTOLOADED_HERE)], plugins


def test_without_the_setting_this_venv_would_load_them(tmp_path: Path):
    """The check above can fail: with autoload on, the same command line loads the installed plugins."""
    env = {k: v for k, v in suite_environment().items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    plugins = registered_plugins(tmp_path, 1, env)
    assert [p for p in plugins if p.startswith(AUTOLOADED_HERE)], plugins
