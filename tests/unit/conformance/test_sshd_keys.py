"""ACC-5, keys from root-owned files only: sshd's effective AuthorizedKeysFile and the folder's owners and modes,
read from crafted `sshd -T` text and from real `find -printf` listings; and the accounts role that sets it up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from helpers import ROOT

from provisioner.conformance import sshd_keys

ROLE = ROOT / "roles" / "accounts"
DEBIAN_DEFAULT = """port 22
permitrootlogin no
authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2
authorizedkeyscommand none
"""
HARDENED = """port 22
authorizedkeysfile /etc/ssh/authorized_keys/%u
authorizedkeyscommand none
allowgroups pv-login
"""


def test_the_hardened_settings_pass():
    assert sshd_keys.key_source_problems(HARDENED) == []


def test_debians_default_reads_the_users_own_files():
    assert sshd_keys.key_source_problems(DEBIAN_DEFAULT) == [
        "sshd reads authorized keys from .ssh/authorized_keys .ssh/authorized_keys2; "
        "only /etc/ssh/authorized_keys/%u is allowed"
    ]


def test_the_root_owned_file_plus_a_home_file_is_refused():
    text = HARDENED.replace("/etc/ssh/authorized_keys/%u", "/etc/ssh/authorized_keys/%u .ssh/authorized_keys2")
    assert sshd_keys.key_source_problems(text) == [
        "sshd reads authorized keys from /etc/ssh/authorized_keys/%u .ssh/authorized_keys2; "
        "only /etc/ssh/authorized_keys/%u is allowed"
    ]


def test_a_keys_command_and_a_missing_setting_are_refused():
    text = "authorizedkeyscommand /usr/local/bin/fetch-keys %u\n"
    assert sshd_keys.key_source_problems(text) == [
        "sshd reads authorized keys from (not printed); only /etc/ssh/authorized_keys/%u is allowed",
        "sshd takes keys from the command /usr/local/bin/fetch-keys %u; none is allowed",
    ]


def listing_of(folder: Path) -> str:
    """The listing the check reads, made by the real `find` on `folder`, as if it were the hosts' folder."""
    command = sshd_keys.LISTING_COMMAND.replace(sshd_keys.KEYS_DIR, str(folder))
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    return output.replace(str(folder), sshd_keys.KEYS_DIR)


def keys_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "authorized_keys"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    for user in ("dave", "deploy", "provision"):
        (folder / user).write_text("ssh-ed25519 AAAA\n")
        (folder / user).chmod(0o644)
    return folder


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="files made here are root's only when the tests run as root")


@AS_ROOT
def test_the_roles_folder_passes(tmp_path: Path):
    assert sshd_keys.key_file_problems(listing_of(keys_folder(tmp_path))) == []


@AS_ROOT
def test_a_file_the_user_may_write_is_refused(tmp_path: Path):
    folder = keys_folder(tmp_path)
    os.chown(folder / "dave", 1000, 1000)
    (folder / "deploy").chmod(0o664)
    (folder / "provision").chmod(0o646)
    assert sshd_keys.key_file_problems(listing_of(folder)) == [
        "/etc/ssh/authorized_keys/dave belongs to uid 1000, not root",
        "/etc/ssh/authorized_keys/deploy has mode 0664: writable by group 0 or others",
        "/etc/ssh/authorized_keys/provision has mode 0646: writable by group 0 or others",
    ]


def test_a_link_and_a_writable_folder_are_refused(tmp_path: Path):
    folder = keys_folder(tmp_path)
    (tmp_path / "mine").write_text("ssh-ed25519 AAAA\n")
    (folder / "alice").symlink_to(tmp_path / "mine")
    folder.chmod(0o777)
    problems = sshd_keys.key_file_problems(listing_of(folder))
    assert "/etc/ssh/authorized_keys/alice is a symbolic link, not a file" in problems
    assert any(p.startswith("/etc/ssh/authorized_keys has mode 0777: writable by group") for p in problems)


def test_a_missing_folder_is_refused():
    assert sshd_keys.key_file_problems("") == ["/etc/ssh/authorized_keys is missing"]


def _flatten(tasks: list[dict]) -> list[dict]:
    return [t for task in tasks for t in ([task, *_flatten(task["block"])] if "block" in task else [task])]


# ---- the accounts role ----------------------------------------------------------------------------------------
def test_the_sshd_dropin_points_only_at_the_root_owned_folder():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    template = (ROLE / "templates" / "etc" / "ssh" / "sshd_config.d" / "10-provisioner.conf.j2").read_text()
    variables = {**defaults, "accounts_sshd_allow_groups": ["pv-login", "pv-deploy", "provision"]}
    text = (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(template)
        .render(ansible_managed="managed", **variables)
    )
    settings = [line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    assert ["AuthorizedKeysFile", f"{sshd_keys.KEYS_DIR}/%u"] in settings
    assert ["AuthorizedKeysCommand", "none"] in settings
    assert defaults["accounts_authorized_keys_dir"] == sshd_keys.KEYS_DIR, "the role and the check agree"


def test_the_role_writes_keys_root_owned_and_nowhere_a_user_owns():
    tasks = yaml.safe_load((ROLE / "tasks" / "keys.yml").read_text())
    writes = [t["ansible.builtin.copy"] for t in tasks if "ansible.builtin.copy" in t]
    assert len(writes) == 3, "people, deploy identity, automation account"
    for write in writes:
        assert write["dest"].startswith("{{ accounts_authorized_keys_dir }}/")
        assert (write["owner"], write["group"], write["mode"]) == ("root", "root", "0644")
    for tasks_file in sorted((ROLE / "tasks").glob("*.yml")):
        for task in _flatten(yaml.safe_load(tasks_file.read_text())):
            for module in ("ansible.builtin.copy", "ansible.builtin.template", "ansible.builtin.file"):
                args = task.get(module, {})
                if args.get("state") != "absent":
                    place = str(args.get("dest", args.get("path", "")))
                    assert "/home/" not in place and ".ssh" not in place, f"{tasks_file.name}: {task['name']}"
    removed = next(t for t in tasks if t["name"].startswith("Remove") and "keys sshd no longer reads" in t["name"])
    assert "['authorized_keys', 'authorized_keys2']" in removed["vars"]["accounts_home_keys_unread"]
    found = next(t for t in tasks if t["name"].startswith("Find the keys sshd no longer reads"))
    assert found["ansible.builtin.find"]["patterns"] == ["authorized_keys", "authorized_keys2"]
    assert "accounts_home_keys_found.files" in removed["loop"], "what the find found, of the listed accounts"
