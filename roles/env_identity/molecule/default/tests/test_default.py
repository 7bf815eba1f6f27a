"""env_identity (CUE-1, CUE-2) on the scenario's lab: every host names its environment in its host name, its
pre-login SSH banner (as a real SSH client sees it), its MOTD and its shell prompt, in the environment's colour."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "molecule" / "shared"))
from scenario import hostvars

KNOWN_HOSTS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "known_hosts"
ESC = "\x1b"

testinfra_hosts = ["dev-app1", "prod-app1"]

# what each host must announce: environment, tier, SGR colour, data rule
EXPECTED = {
    "dev-app1": ("DEV", "development", 32, "dummy"),
    "prod-app1": ("PROD", "production", 31, "live"),
}


def name_of(host) -> str:
    return host.backend.get_hostname()


def test_hostname_carries_the_environment(host):
    name = name_of(host)
    assert host.run("hostname").stdout.strip() == name
    assert name.startswith(hostvars()[name]["env_name"] + "-")


def test_motd_names_the_environment_in_its_colour(host):
    env, tier, colour, data = EXPECTED[name_of(host)]
    motd = host.file("/etc/motd").content_string
    assert f"{ESC}[1;{colour}m  {env} environment ({tier}) - {name_of(host)}{ESC}[0m" in motd
    assert f"data: {data}" in motd
    assert ("PRODUCTION: changes go only through the release process" in motd) == (tier == "production")


def test_sshd_shows_the_banner(host):
    settings = dict(line.split(" ", 1) for line in host.run("/usr/sbin/sshd -T").stdout.splitlines() if " " in line)
    assert settings["banner"] == "/etc/issue.net"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ssh_client_sees_the_banner_before_login(name):
    env, tier, _, _ = EXPECTED[name]
    hv = hostvars()[name]
    result = subprocess.run(
        [
            "ssh", "-i", hv["ansible_private_key_file"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "ControlMaster=no",
            "-o", "LogLevel=INFO", f"provision@{hv['ansible_host']}", "true",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"*** {env} environment ({tier}) - {name} ***" in result.stderr
    assert ("*** PRODUCTION:" in result.stderr) == (tier == "production")
    assert ESC not in result.stderr  # the pre-login banner stays plain text


def test_login_shell_prompt_names_the_environment(host):
    env, tier, colour, _ = EXPECTED[name_of(host)]
    shell = host.run(
        'bash -lc \'__provisioner_prompt; printf "%s|%s|%s" "$PROVISIONER_ENV" "$PROVISIONER_TIER" "$PS1"\''
    )
    assert shell.rc == 0, shell.stderr
    got_env, got_tier, ps1 = shell.stdout.split("|", 2)
    assert (got_env, got_tier) == (env.lower(), tier)
    assert ps1.startswith(f"\\[\\e[1;{colour}m\\][{env.lower()}]\\[\\e[0m\\]")
