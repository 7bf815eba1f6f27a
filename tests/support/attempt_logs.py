"""Journal entries as Debian 12's sshd (OpenSSH 9.2, LogLevel VERBOSE) and sudo 1.9 write them on a production host,
and a controller's copy of a host's journal made by the real systemd-journal-remote (as the log receiver writes
it): for the attempts-between-runs tests, unit and lab."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from provisioner.backends.network.log_receiver import RECEIVER
from provisioner.controller.shell import run

BOOT_ID = "6f1c0b7d2e3a4c5b8d9e0f1a2b3c4d5e"
_seq = itertools.count(1)


def entry(when: dt.datetime, pid: int, message: str, program: str = "sshd", host: str = "prod-app1") -> dict[str, Any]:
    """One entry as `journalctl --output=json` prints it (syslog transport: sshd and sudo log through syslog)."""
    micros = int(when.timestamp() * 1_000_000)
    return {
        "__REALTIME_TIMESTAMP": str(micros),
        "__MONOTONIC_TIMESTAMP": str(next(_seq) * 1000),
        "_BOOT_ID": BOOT_ID,
        "_TRANSPORT": "syslog",
        "_HOSTNAME": host,
        "_PID": str(pid),
        "_COMM": program,
        "SYSLOG_IDENTIFIER": program,
        "SYSLOG_PID": str(pid),
        "SYSLOG_FACILITY": "10" if program == "sudo" else "4",
        "PRIORITY": "6",
        "MESSAGE": message,
    }


def refused_key(when: dt.datetime, pid: int, user: str, source: str, fingerprint: str, port: int = 40112) -> list:
    """A login with a key the account does not accept: OpenSSH 9.2 at VERBOSE names the key offered."""
    return [
        entry(when, pid, f'Connection from {source} port {port} on 10.90.30.11 port 22 rdomain ""'),
        entry(when, pid, f"Failed publickey for {user} from {source} port {port} ssh2: ED25519 {fingerprint}"),
        entry(when, pid, f"Connection closed by authenticating user {user} {source} port {port} [preauth]"),
    ]


def invalid_user(when: dt.datetime, pid: int, user: str, source: str, fingerprint: str, port: int = 40113) -> list:
    """A login to an account the host does not have."""
    return [
        entry(when, pid, f'Connection from {source} port {port} on 10.90.30.11 port 22 rdomain ""'),
        entry(when, pid, f"Invalid user {user} from {source} port {port}"),
        entry(
            when, pid, f"Failed publickey for invalid user {user} from {source} port {port} ssh2: ED25519 {fingerprint}"
        ),
        entry(when, pid, f"Connection closed by invalid user {user} {source} port {port} [preauth]"),
    ]


def accepted(when: dt.datetime, pid: int, user: str, source: str, fingerprint: str, port: int = 50000) -> list:
    return [
        entry(when, pid, f'Connection from {source} port {port} on 10.90.30.11 port 22 rdomain ""'),
        entry(when, pid, f"Accepted publickey for {user} from {source} port {port} ssh2: ED25519 {fingerprint}"),
        entry(when, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
    ]


def sudo_not_in_sudoers(when: dt.datetime, pid: int, user: str, command: str = "/usr/bin/cat /etc/shadow") -> list:
    """sudo pads the user name to eight characters in its syslog lines."""
    return [
        entry(when, pid, f"{user:>8} : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/{user} ; USER=root ; "
                         f"COMMAND={command}", program="sudo"),
    ]  # fmt: skip


def sudo_ran(when: dt.datetime, pid: int, user: str, command: str = "/usr/bin/id") -> list:
    return [
        entry(when, pid, f"{user:>8} : PWD=/home/{user} ; USER=root ; COMMAND={command}", program="sudo"),
        entry(when, pid, f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)",
              program="sudo"),
    ]  # fmt: skip


def pam_failure(when: dt.datetime, pid: int, user: str) -> dict[str, Any]:
    return entry(
        when, pid,
        f"pam_unix(sudo:auth): authentication failure; logname={user} uid=1003 euid=0 tty=/dev/pts/0 ruser={user} "
        f"rhost=  user={user}",
        program="sudo",
    )  # fmt: skip


def export_format(entries: list[dict[str, Any]]) -> str:
    """The journal export format (what systemd-journal-upload sends): `FIELD=value` lines, a blank line after each."""
    blocks = []
    for item in entries:
        lines = [f"{key}={value}" for key, value in item.items()]
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def write_copy(folder: Path, address: str, entries: list[dict[str, Any]]) -> Path:
    """The controller's copy of one host's journal, written by systemd-journal-remote from export-format input, as
    the receiver names it (by the sending address)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"remote-{address}.journal"
    run([RECEIVER, f"--output={path}", "-"], input_text=export_format(entries), timeout=60)
    return path
