"""audit_logging (LOG-1) on the scenario's lab: production logs every login with its key fingerprint and every
privileged command, to a persistent journal; development keeps the defaults. Checked with a fresh login and a
fresh sudo command, then read back from the logs."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "molecule" / "shared"))
from scenario import hostvars, machine

KNOWN_HOSTS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "known_hosts"

testinfra_hosts = ["dev-app1", "prod-app1"]


def sshd_settings(host) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in host.run("/usr/sbin/sshd -T").stdout.splitlines() if " " in line)


def fresh_login(name: str, command: str) -> subprocess.CompletedProcess:
    """A new SSH session (no shared connection) as the automation account, with the controller's key."""
    hv = hostvars()[name]
    return subprocess.run(
        [
            "ssh", "-i", hv["ansible_private_key_file"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "ControlMaster=no",
            f"provision@{hv['ansible_host']}", command,
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def key_fingerprint(name: str) -> str:
    key = hostvars()[name]["ansible_private_key_file"]
    return subprocess.run(["ssh-keygen", "-lf", key], capture_output=True, text=True, check=True).stdout.split()[1]


# ---- production -----------------------------------------------------------------------------------------
def test_production_journal_is_persistent():
    prod = machine("prod-app1")
    dropin = prod.file("/etc/systemd/journald.conf.d/10-provisioner.conf")
    assert dropin.contains("^Storage=persistent$")
    machine_id = prod.file("/etc/machine-id").content_string.strip()
    assert prod.file(f"/var/log/journal/{machine_id}").is_directory  # journald writes there now
    assert prod.service("systemd-journald").is_running


def test_production_sshd_logs_verbosely():
    assert sshd_settings(machine("prod-app1"))["loglevel"] == "VERBOSE"


def test_production_login_logged_with_key_fingerprint():
    marker = f"molecule-login-{uuid.uuid4().hex[:8]}"
    login = fresh_login("prod-app1", f"logger -t molecule {marker}")
    assert login.returncode == 0, login.stderr
    journal = machine("prod-app1").run("journalctl --no-pager -o cat -u ssh.service -n 200").stdout
    fingerprint = key_fingerprint("prod-app1")
    controller = next(ipaddress.ip_network(hostvars()["prod-app1"]["provisioner_management_cidr"]).hosts())
    assert f"Accepted publickey for provision from {controller} " in journal
    assert fingerprint in journal


def test_production_sudo_command_logged_to_file_and_journal():
    marker = f"molecule-sudo-{uuid.uuid4().hex[:8]}"
    result = fresh_login("prod-app1", f"sudo -n /usr/bin/echo {marker}")
    assert result.returncode == 0, result.stderr
    prod = machine("prod-app1")
    sudo_log = " ".join(prod.file("/var/log/sudo.log").content_string.split())  # sudo wraps long entries
    entry = next(e for e in sudo_log.split(" : provision : ") if f"COMMAND=/usr/bin/echo {marker}" in e)
    assert "USER=root" in entry
    journal = prod.run("journalctl --no-pager -o cat SYSLOG_FACILITY=10 -n 200").stdout  # authpriv
    assert marker in journal


def test_production_sudoers_rule_valid():
    prod = machine("prod-app1")
    assert prod.file("/etc/sudoers.d/pv-audit-logging").mode == 0o440
    assert prod.run("visudo -c").rc == 0


# ---- development --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/etc/systemd/journald.conf.d/10-provisioner.conf",
        "/etc/sudoers.d/pv-audit-logging",
        "/etc/ssh/sshd_config.d/30-audit-logging.conf",
    ],
)
def test_development_keeps_the_defaults(path):
    assert not machine("dev-app1").file(path).exists


def test_development_sshd_log_level_default():
    assert sshd_settings(machine("dev-app1"))["loglevel"] == "INFO"


def test_auditd_stays_off_in_containers(host):
    assert not host.service("auditd").is_enabled
