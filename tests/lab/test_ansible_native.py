"""The same inventory and playbooks without `provision`: plain ansible-playbook (and its --check --diff), and
ansible-runner the way AWX runs a job, on the shared lab that `provision apply` built.

Nothing here imports or runs provisioner: the plays find their roles and the secret lookup in the collection next
to the playbooks, and their secrets in the inventory's folder or, as an AWX credential gives them, in the
environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ansible_runner
import pytest
from conftest import template_marker
from helpers import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
AWX_SIDE_FOLDER = "/var/lib/awx/no-such-folder"
HOSTS = {"gateway", "dev-app1", "dev-db1", "test-app1", "test-db1", "prod-app1", "prod-db1"}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def _plain_environment(home: Path) -> dict[str, str]:
    """What a sysadmin's shell holds: no PROVISION_* variable, no Ansible setting but the generated ansible.cfg."""
    return {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "ANSIBLE_NOCOLOR": "1"}  # fmt: skip


def _recap(output: str) -> dict[str, dict[str, int]]:
    return {
        host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
        for host, ok, changed, unreachable, failed in RECAP.findall(output)
    }


def _inventory(lab) -> Path:
    return lab.site_file.parent / "hosts.yml"


def _run_plain(lab, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The command the inventory's header gives, from the repository's root."""
    header = _inventory(lab).read_text().splitlines()[1]
    assert header.startswith("# Plain Ansible: ANSIBLE_CONFIG="), header
    env = {**_plain_environment(tmp_path), "ANSIBLE_CONFIG": str(lab.state.ansible_cfg)}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(_inventory(lab)), "playbooks/site.yml", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    return result, _recap(result.stdout)


def test_plain_ansible_playbook_runs_the_site_and_changes_nothing(lab, tmp_path):
    """After `provision apply`, plain ansible-playbook of the same inventory: every host reached, no failure,
    no change (the play needs nothing `provision` would inject)."""
    result, recap = _run_plain(lab, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert set(recap) == HOSTS, recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    assert {h: r["changed"] for h, r in recap.items() if r["changed"]} == {}, result.stdout[-4000:]


def test_plain_ansible_playbook_check_diff_reports_no_difference(lab, tmp_path):
    """`--check --diff` on the built lab: nothing would change, and no task fails in check mode."""
    result, recap = _run_plain(lab, tmp_path, "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert set(recap) == HOSTS, recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    assert {h: r["changed"] for h, r in recap.items() if r["changed"]} == {}, result.stdout[-4000:]
    assert "--- before" not in result.stdout, result.stdout[-4000:]  # no diff shown


def _awx_private_data_dir(lab, folder: Path) -> tuple[Path, dict[str, str]]:
    """A job's private data folder as AWX lays it out: the project (this repository's playbooks, roles,
    plugins and collection metadata: no Python package), the inventory synced from the project's file, the
    machine credential's key, and a custom credential's secrets injected as environment variables."""
    project = folder / "project"
    project.mkdir(parents=True)
    for name in ("playbooks", "roles", "plugins", "meta", "collections"):
        shutil.copytree(ROOT / name, project / name, symlinks=True, ignore=shutil.ignore_patterns("molecule"))
    for name in ("galaxy.yml", "execution-environment.yml"):
        shutil.copy2(ROOT / name, project / name)
    assert f"provisioner_secrets_dir: !unsafe '{lab.state.secrets_dir}'" in _inventory(lab).read_text()
    # AWX syncs the project's inventory file through ansible-inventory into its database, and hands a job the
    # inventory as a script printing that JSON: the secret folder named there does not exist on its side
    synced = folder / "synced.yml"
    synced.write_text(_inventory(lab).read_text().replace(str(lab.state.secrets_dir), AWX_SIDE_FOLDER))
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(synced), "--list", "--export"],
        capture_output=True, text=True, timeout=120, env=_plain_environment(folder), check=True,
    )  # fmt: skip
    (folder / "inventory").mkdir()
    script = folder / "inventory" / "hosts"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write({listed.stdout!r})\n")
    script.chmod(0o700)
    env_dir = folder / "env"
    env_dir.mkdir(mode=0o700)
    (env_dir / "ssh_key").write_text(lab.state.controller_identity().read_text())
    (env_dir / "ssh_key").chmod(0o600)
    shutil.copy2(lab.state.known_hosts, folder / "known_hosts")
    secrets = {
        "PROVISIONER_SECRET_" + re.sub(r"[^A-Z0-9]", "_", path.name.upper()): path.read_text().rstrip("\n")
        for path in sorted(lab.state.secrets_dir.iterdir())
        if path.is_file()
    }
    settings = {
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": f"-o UserKnownHostsFile={folder / 'known_hosts'} -o StrictHostKeyChecking=yes "
        "-o ControlMaster=auto -o ControlPersist=60s",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": tempfile.mkdtemp(prefix="awx-cp-"),  # short: a socket path's limit
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORKS": "12",
    }
    return folder, {**secrets, **settings}


def test_the_site_playbook_runs_as_an_awx_job_with_injected_credentials(lab, tmp_path):
    """ansible-runner with a project folder, an inventory and credentials, no `provision` and no secret
    folder on this side: every host converges with no failure and no change, so each secret the plays use came
    from the injected environment (the inventory's folder does not exist here)."""
    private, env = _awx_private_data_dir(lab, tmp_path / "job")
    outside = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook="playbooks/site.yml",
        inventory=str(private / "inventory" / "hosts"),
        envvars={**env, "HOME": str(tmp_path), "PATH": f"{BIN}:{outside.get('PATH', '/usr/bin:/bin')}"},
        quiet=True,
        timeout=800,
    )
    output = runner.stdout.read()
    assert runner.status == "successful" and runner.rc == 0, output[-4000:]
    stats = runner.stats or {}
    assert set(stats["ok"]) == HOSTS, stats
    assert not stats["failures"] and not stats["dark"], stats
    assert not {h: n for h, n in stats["changed"].items() if n}, output[-4000:]
    assert "PROVISIONER_SECRET_DB_APP_PROD" in env and not Path(AWX_SIDE_FOLDER).exists()
    # the site's free text went through AWX's JSON as Ansible's unsafe text: never run as a template here
    assert not template_marker(lab.site.name).exists()
