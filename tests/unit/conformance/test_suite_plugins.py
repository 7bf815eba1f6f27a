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


def test_the_checks_that_wait_start_first_one_per_worker(tmp_path: Path):
    """xdist hands out tests two at a time at first (verify passes --maxschedchunk 1): the longest waits come
    first, each followed by a quick check, so each worker starts on one of them. Three reachability checks in a
    row had landed on one worker and made verify 3 s longer."""
    cmd = suite_command(load_site(EXAMPLE), tmp_path, workers=4)
    assert cmd[cmd.index("--maxschedchunk") + 1] == "1"
    cmd[cmd.index("-n") + 1] = "0"
    out = subprocess.run([*cmd, "--collect-only"], capture_output=True, text=True, env=suite_environment(), timeout=120)
    order = [line.split("::", 1)[1] for line in out.stdout.splitlines() if "::" in line]
    assert len(order) > 20, out.stdout + out.stderr
    first = order[:8]
    assert [name.startswith("test_reachability_from_each_") for name in first[0:6:2]] == [True] * 3, first
    waits = {"test_reachability_from_each_", "test_developer_key_refused", "test_data_provenance", "test_no_personal",
             "test_production_records", "test_production_logs", "test_developer_sudo_refused"}  # fmt: skip
    assert not any(first[i].startswith(tuple(waits)) for i in (1, 3, 5, 7)), first


def test_the_suite_keeps_out_of_other_runs_temporary_folders(tmp_path: Path):
    """With workers, xdist asks pytest for a base temporary folder. Given none, pytest numbers a new one under the
    shared pytest-of-<user> and deletes the older ones there, whoever made them (another run's 746 MB folder made
    the suite 5 s longer). Verify gives the suite a folder of its own: the shared root is left as it was."""
    import getpass

    root = tmp_path / "temproot"
    shared = root / f"pytest-of-{getpass.getuser()}"
    others = [shared / f"pytest-{n}" for n in range(1, 6)]
    for folder in others:
        (folder / "work").mkdir(parents=True)
        (folder / "work" / "file").write_text("another run's")
    before = sorted(p.name for p in shared.iterdir())

    def run(basetemp: Path | None) -> subprocess.CompletedProcess[str]:
        cmd = suite_command(load_site(EXAMPLE), tmp_path, workers=2, select="no_check_is_named_so", basetemp=basetemp)
        env = {**suite_environment(), "PYTEST_DEBUG_TEMPROOT": str(root)}
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    ours = tmp_path / "ours" / "pytest"
    ours.parent.mkdir()
    result = run(ours)
    assert result.returncode == 5 and "no tests ran" in result.stdout, result.stdout + result.stderr
    assert sorted(p.name for p in shared.iterdir()) == before
    assert all((folder / "work" / "file").read_text() == "another run's" for folder in others)
    assert ours.is_dir(), "pytest made the folder it was given, for the workers' temporary folders"

    run(None)  # the command line without a folder of its own: pytest clears the oldest runs' folders away
    assert not (shared / "pytest-1").exists() and (shared / "pytest-6").exists(), sorted(shared.iterdir())
