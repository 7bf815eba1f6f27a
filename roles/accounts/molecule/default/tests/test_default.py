"""accounts (ACC-1, ACC-2, ACC-4, ACC-5) on the scenario's lab: who exists where, sshd's effective settings,
sudo rights, and real SSH logins from the controller with the example people's demo keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "molecule" / "shared"))
from scenario import address, machine

KNOWN_HOSTS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "known_hosts"
DEMO_KEYS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "inventories" / "example" / "demo-keys"

testinfra_hosts = ["dev-app1", "prod-app1"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """The demo private keys, mode 0600 (a fresh clone does not keep file modes)."""
    folder = tmp_path_factory.mktemp("demo-keys")
    for person in ("alice", "carol", "dave", "deploy"):
        shutil.copy(DEMO_KEYS / person, folder / person)
        (folder / person).chmod(0o600)
    return folder


def ssh(keys: Path, user: str, host: str, command: str = "true") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh", "-i", str(keys / user), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o", "ControlMaster=no", "-o", "ConnectTimeout=5", f"{user}@{address(host)}", command,
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


# ---- who exists where (ACC-1) ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "present", "groups"),
    [
        ("dev-app1", ["alice", "bob", "dave", "deploy"], {"alice": "pv-sudo", "dave": "pv-sudo"}),
        ("prod-app1", ["dave", "deploy"], {"dave": "pv-sudo"}),
    ],
)
def test_listed_accounts_exist(name, present, groups):
    target = machine(name)
    for user in present:
        assert target.user(user).exists, f"{user} missing on {name}"
        assert target.user(user).shell == "/bin/bash"
    for user, group in groups.items():
        assert group in target.user(user).groups
    assert "pv-login" in target.user("dave").groups
    assert "pv-deploy" in target.user("deploy").groups


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "erin", "mallory"])
def test_nobody_else_on_production(user):
    assert not machine("prod-app1").user(user).exists, f"{user} has an account on production"


def test_leaver_removed_with_home():
    assert not machine("prod-app1").file("/home/mallory").exists


def test_a_key_in_a_home_is_removed():
    """prepare left a key in /home/dave/.ssh/authorized_keys: sshd reads only the root-owned copy, the role removes
    the other."""
    assert machine("prod-app1").file("/home/dave/.ssh").is_directory, "prepare made it (else this proves nothing)"
    assert not machine("prod-app1").file("/home/dave/.ssh/authorized_keys").exists


def test_a_system_account_with_a_login_shell_loses_it():
    target = machine("prod-app1")
    assert target.user("legacysvc").exists and target.user("legacysvc").uid < 1000
    assert target.user("legacysvc").shell == "/usr/sbin/nologin"
    assert target.user("root").shell == "/bin/bash" and target.user("provision").shell == "/bin/bash"


def test_testers_have_no_place_in_development():
    assert not machine("dev-app1").user("carol").exists


def test_passwords_locked(host):
    for line in host.file("/etc/shadow").content_string.splitlines():
        user, password = line.split(":")[:2]
        if user in ("alice", "bob", "dave", "deploy"):
            assert password.startswith("!"), f"{user} has a usable password"


def test_authorized_keys_root_owned_exactly_the_declared_key(host):
    folder = host.file("/etc/ssh/authorized_keys")
    assert folder.is_directory and (folder.user, folder.group, folder.mode) == ("root", "root", 0o755)
    dave = host.file("/etc/ssh/authorized_keys/dave")
    assert (dave.user, dave.group, dave.mode) == ("root", "root", 0o644)
    assert dave.content_string.strip() == (DEMO_KEYS / "dave.pub").read_text().strip()
    assert not host.file("/home/dave/.ssh/authorized_keys").exists, "the old, user-owned file is gone"
    deploy = host.file("/etc/ssh/authorized_keys/deploy")
    assert deploy.user == "root" and deploy.content_string.strip() == (DEMO_KEYS / "deploy.pub").read_text().strip()


def test_the_automation_keys_are_copied_root_owned(host):
    copy = host.file("/etc/ssh/authorized_keys/provision")
    assert (copy.user, copy.group, copy.mode) == ("root", "root", 0o644)
    assert copy.content_string == host.file("/home/provision/.ssh/authorized_keys").content_string
    assert copy.content_string.strip(), "automation keeps a key"


def test_only_listed_accounts_have_keys():
    listed = {"dev-app1": {"alice", "bob", "dave", "deploy", "provision"}, "prod-app1": {"dave", "deploy", "provision"}}
    for name, accounts in listed.items():
        found = set(machine(name).run("ls -A /etc/ssh/authorized_keys").stdout.split())
        assert found == accounts, f"{name}: {sorted(found)}"
    assert not machine("prod-app1").file("/etc/ssh/authorized_keys/mallory").exists, "the leaver's key went"


# ---- sshd (ACC-5) ----------------------------------------------------------------------------------------
def test_sshd_effective_settings(host):
    settings: dict[str, list[str]] = {}
    for line in host.run("/usr/sbin/sshd -T").stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)  # sshd -T prints one allowgroups line per group
    assert settings["permitrootlogin"] == ["no"]
    assert settings["passwordauthentication"] == ["no"]
    assert settings["kbdinteractiveauthentication"] == ["no"]
    assert settings["permitemptypasswords"] == ["no"]
    assert settings["pubkeyauthentication"] == ["yes"]
    assert set(settings["allowgroups"]) == {"pv-login", "pv-deploy", "provision"}
    # keys only from the root-owned files: not ~/.ssh/authorized_keys, not ~/.ssh/authorized_keys2
    assert settings["authorizedkeysfile"] == ["/etc/ssh/authorized_keys/%u"]
    assert settings["authorizedkeyscommand"] == ["none"]


def test_sshd_running_with_the_dropin(host):
    assert host.service("ssh").is_running
    assert host.file("/etc/ssh/sshd_config.d/10-provisioner.conf").contains("^AllowGroups ")


# ---- real logins (ACC-2) ---------------------------------------------------------------------------------
def test_developer_logs_in_to_development(keys):
    result = ssh(keys, "alice", "dev-app1", "id -un")
    assert result.returncode == 0 and result.stdout.strip() == "alice", result.stderr


@pytest.mark.parametrize("user", ["alice", "carol"])
def test_developer_and_tester_keys_refused_by_production(keys, user):
    result = ssh(keys, user, "prod-app1")
    assert result.returncode == 255 and "Permission denied" in result.stderr, result.stderr


def test_a_key_a_user_adds_to_their_home_is_not_read(keys):
    """dave adds alice's key to his own ~/.ssh/authorized_keys and authorized_keys2 (as he could): sshd ignores both,
    and dave's own key still works."""
    target = machine("dev-app1")
    alice = (DEMO_KEYS / "alice.pub").read_text().strip()
    planted = target.run(
        "install -d -o dave -g dave -m 0700 /home/dave/.ssh && for f in authorized_keys authorized_keys2; do "
        f"echo '{alice}' > /home/dave/.ssh/$f && chown dave:dave /home/dave/.ssh/$f && chmod 600 /home/dave/.ssh/$f; "
        "done"
    )
    assert planted.rc == 0, planted.stderr
    try:
        result = ssh(keys, "alice", "dev-app1", "true")  # alice's own login still works: the key is sound
        assert result.returncode == 0, result.stderr
        as_dave = subprocess.run(
            ["ssh", "-i", str(keys / "alice"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "ControlMaster=no",
             "-o", "ConnectTimeout=5", f"dave@{address('dev-app1')}", "true"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert as_dave.returncode == 255 and "Permission denied" in as_dave.stderr, as_dave.stderr
        assert ssh(keys, "dave", "dev-app1", "id -un").stdout.strip() == "dave"
    finally:
        target.run("rm -f /home/dave/.ssh/authorized_keys /home/dave/.ssh/authorized_keys2")


def test_admin_logs_in_to_production_with_sudo(keys):
    result = ssh(keys, "dave", "prod-app1", "sudo -n id -u")
    assert result.returncode == 0 and result.stdout.strip() == "0", result.stderr


# ---- sudo (ACC-4) ----------------------------------------------------------------------------------------
def test_deploy_may_run_only_the_deploy_command(keys):
    form = "r1 " + "0" * 64 + " 1:" + "a" * 64  # RELEASE_ID SHA256 COUNT:HASH, the one form the rule allows
    allowed = ssh(keys, "deploy", "prod-app1", f"sudo -n /usr/local/sbin/provision-deploy {form}")
    assert allowed.returncode == 0, allowed.stderr
    command = "/usr/local/sbin/provision-deploy"
    newline_id = "'r1\n../x' " + form[3:]  # a newline inside the quotes: the id's second line a path
    for attempt in ("/usr/bin/id", f"{command} {form} extra", f"{command} release-1", f"{command} {newline_id}"):
        refused = ssh(keys, "deploy", "prod-app1", f"sudo -n {attempt}")
        assert refused.returncode == 1, (attempt, refused.stderr)
        assert "a password is required" in refused.stderr or "not allowed" in refused.stderr, refused.stderr


def test_sudo_rules_on_production():
    target = machine("prod-app1")
    rules = target.file("/etc/sudoers.d/pv-deploy").content_string.splitlines()
    form = r"^r[1-9][0-9]{0,8} [0-9a-f]{64} [1-9][0-9]{0,8}:[0-9a-f]{64}$"
    assert f"%pv-deploy ALL=(root) NOPASSWD: /usr/local/sbin/provision-deploy {form}" in rules
    assert target.file("/etc/sudoers.d/pv-sudo").mode == 0o440
    assert target.run("visudo -c").rc == 0
