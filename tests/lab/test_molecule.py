"""Every role's Molecule scenario (roles/<role>/molecule/default), run for real with `molecule test`.

Each scenario builds its own small site on this machine through the project's LXC backend
(provisioner.backends.lxc.molecule_lab, addresses 10.94.0.0/16), converges the role, converges it again (idempotence),
runs its testinfra tests and destroys the site. Scenarios share the address range, so they run one after
another (do not spread this file over several pytest-xdist workers).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import lab_prerequisites_missing

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))
VENV_BIN = Path(sys.executable).parent
RUN_TIMEOUT = 870  # below the pytest timeout, so a hung run is stopped here and its lab destroyed
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def prerequisites_missing() -> str | None:
    missing = lab_prerequisites_missing()
    if missing is not None:
        return missing
    if not (VENV_BIN / "molecule").exists():
        return f"molecule is not installed in {VENV_BIN} (pip install -e '.[dev]')"
    return None


def molecule(role_dir: Path, *args: str, timeout: float) -> tuple[int | None, str]:
    """Run the venv's molecule in `role_dir`; (None, output) if it ran out of time (the whole group is killed)."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    env.pop("MOLECULE_EPHEMERAL_DIRECTORY", None)
    proc = subprocess.Popen(
        [str(VENV_BIN / "molecule"), *args],
        cwd=role_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, ANSI.sub("", out)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, ANSI.sub("", out or "")


@pytest.mark.lab
@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.parents[1].name for p in SCENARIOS])
def test_molecule_scenario(scenario: Path, tmp_path: Path, record_property):
    reason = prerequisites_missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Molecule scenarios, but {reason}")
        pytest.skip(reason)
    role_dir = scenario.parents[1]
    started = time.monotonic()
    rc, out = molecule(role_dir, "test", timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    record_property("molecule_seconds", round(elapsed, 1))
    (tmp_path / "molecule.log").write_text(out)
    print(f"molecule test {role_dir.name}: {elapsed:.0f} s (log: {tmp_path / 'molecule.log'})")
    if rc is None:
        molecule(role_dir, "destroy", timeout=120)  # never leave a lab behind
        pytest.fail(f"molecule test {role_dir.name} ran longer than {RUN_TIMEOUT} s:\n{out[-6000:]}")
    assert rc == 0, f"molecule test {role_dir.name} failed (rc {rc}):\n{out[-8000:]}"
    assert re.search(r"idempotence: Executed: Successful", out), f"idempotence did not pass:\n{out[-4000:]}"
    assert re.search(r"verify: Executed: Successful", out), f"verify did not pass:\n{out[-4000:]}"
    assert not re.search(r"verify: .*(Skipping|no tests found)", out, re.IGNORECASE), "no testinfra test ran"
    if "[default > check] Executing" in out:  # a scenario that runs the role in check mode on its converged lab
        assert_check_mode_changed_nothing(out)


def assert_check_mode_changed_nothing(out: str) -> None:
    """The check step (`ansible-playbook --check` on the converged lab) ran, failed nowhere and changed nothing."""
    step = out.split("[default > check] Executing", 1)[1].split("[default > check] Executed", 1)[0]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", step, re.MULTILINE)
    assert recap, f"the check step printed no recap:\n{step[-4000:]}"
    unclean = [host for host, *counts in recap if counts != ["0", "0", "0"]]
    assert not unclean, f"check mode changed or failed on {unclean}:\n{step[-6000:]}"
