"""CUE-1..2 (the environment is visible everywhere) and LOG-1 (production records logins and sudo)."""

from __future__ import annotations

import time
import uuid

import pytest

from provisioner.backends.network import log_receiver
from provisioner.site.vocabulary import COLOURS

SHIPPING_WAIT = 20.0  # seconds a fresh entry may take to reach the controller's copy


@pytest.mark.control("CUE-1")
def test_banners_and_prompt_announce_the_environment(lab, evidence, host_name):
    host = lab.host(host_name)
    env = lab.model.environment(host.environment)
    colour = f"\x1b[1;{COLOURS[env.colour].ansi}m"
    remote = lab.remote.host(str(host.address))
    evidence.expect(
        f"/etc/motd, /etc/issue.net (the SSH banner) and the prompt show {env.name.upper()} in {env.colour}"
    )
    problems = []
    for path in ("/etc/motd", "/etc/issue.net"):
        file = remote.file(path)
        content = file.content_string if file.exists else ""
        shown = env.name.upper() in content and colour in content
        evidence.row(file=path, shows_environment=shown)
        if not shown:
            problems.append(f"{path} does not show {env.name.upper()} in {env.colour}")
    banner = lab.remote.run_as_root(str(host.address), "sshd -T").stdout
    if "banner /etc/issue.net" not in banner:
        problems.append("sshd does not show /etc/issue.net as its banner")
    prompt = remote.run('bash -lic \'eval "$PROMPT_COMMAND"; printf %s "$PS1"\'').stdout
    evidence.row(prompt=repr(prompt[-80:]))
    if env.name not in prompt or f"{COLOURS[env.colour].ansi}m" not in prompt:
        problems.append(f"the login prompt does not show {env.name} in {env.colour}")
    evidence.observe("; ".join(problems) or "environment shown at login and in the prompt")
    assert not problems, "; ".join(problems)


@pytest.mark.control("CUE-2")
def test_hostname_carries_the_environment(lab, evidence, host_name):
    host = lab.host(host_name)
    actual = lab.remote.host(str(host.address)).check_output("hostname")
    evidence.expect(f"a hostname containing '{host.environment}'")
    evidence.observe(actual)
    assert host.environment in actual, f"{actual} does not name its environment {host.environment}"


@pytest.mark.control("LOG-1")
@pytest.mark.waits(1.0)
def test_production_records_a_fresh_login_and_sudo(lab, evidence, prod_host_name):
    host = lab.host(prod_host_name)
    address = str(host.address)
    marker = f"pv-verify-{uuid.uuid4().hex[:8]}"
    settings = lab.remote.run_as_root(
        address, "sh -c 'ls -d /var/log/journal && cat /etc/sudoers.d/* | grep -h logfile'"
    )
    evidence.note(settings.stdout.strip())
    assert settings.rc == 0, f"journald is not persistent or sudo has no log file on {prod_host_name}"
    since = lab.remote.host(address).check_output("date +%s")
    login = lab.remote.attempt_ssh(lab.state.controller_key, "provision", address, f"sudo -n logger {marker}")
    assert login.ok, login.stderr
    time.sleep(0.5)
    journal = lab.remote.run_as_root(address, f"journalctl --no-pager -o cat --since @{since}").stdout
    sudo_log = lab.remote.run_as_root(address, "cat /var/log/sudo.log").stdout
    evidence.expect("the fresh SSH login in the journal, the sudo command in the sudo log")
    found_login = "Accepted publickey for provision" in journal
    found_sudo = marker in sudo_log
    evidence.observe(f"login logged: {found_login}; sudo logged: {found_sudo}")
    assert found_login, f"the login at {since} is not in the journal of {prod_host_name}"
    assert found_sudo, f"the sudo command {marker} is not in /var/log/sudo.log of {prod_host_name}"


def _message(entry: dict[str, object]) -> str:
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journalctl gives a non-UTF-8 message as a list of bytes
        return bytes(int(b) for b in message if isinstance(b, int)).decode(errors="replace")
    return str(message)


@pytest.mark.control("LOG-1")
@pytest.mark.waits(1.0)
def test_production_logs_leave_the_host_as_they_are_written(lab, evidence, prod_host_name):
    """The fresh login and sudo command reach the controller's copy of the host's journal, received from the
    host's own address, within seconds: a root user on the host who wipes its logs afterwards cannot take them
    back."""
    host = lab.host(prod_host_name)
    address = str(host.address)
    receiver = log_receiver.for_site(lab.state, lab.model)
    copy = receiver.journal_of(address)
    evidence.expect(
        f"the controller's log receiver runs on {receiver.url}; a fresh SSH login and sudo command on "
        f"{prod_host_name} appear in {copy.name} (named by the sending address) within {SHIPPING_WAIT:.0f} s"
    )
    assert receiver.running(), (
        f"the controller's log receiver is not running on {receiver.url}: the production journals are not "
        "shipped anywhere (`provision apply` starts it)"
    )
    marker = f"pv-verify-shipped-{uuid.uuid4().hex[:8]}"
    since = int(lab.remote.host(address).check_output("date +%s"))
    login = lab.remote.attempt_ssh(lab.state.controller_key, "provision", address, f"sudo -n logger {marker}")
    assert login.ok, login.stderr
    deadline = time.monotonic() + SHIPPING_WAIT
    found_login = found_sudo = False
    while time.monotonic() < deadline and not (found_login and found_sudo):
        messages = [_message(e) for e in receiver.entries_since(address, since)]
        found_login = any(m.startswith("Accepted publickey for provision") for m in messages)
        found_sudo = any("COMMAND=" in m and marker in m for m in messages)
        if not (found_login and found_sudo):
            time.sleep(0.5)
    evidence.note(f"copy {copy} ({copy.stat().st_size if copy.exists() else 0} bytes)")
    evidence.observe(f"in the controller's copy: login {found_login}, sudo command {found_sudo}")
    assert found_login, f"the login at {since} on {prod_host_name} did not reach the controller's copy {copy}"
    assert found_sudo, f"the sudo command {marker} on {prod_host_name} did not reach the controller's copy {copy}"
