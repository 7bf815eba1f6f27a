"""Where sshd takes a user's keys from (ACC-5): only root-owned files a user cannot change.

The accounts role writes each account's keys to `/etc/ssh/authorized_keys/<user>` (root:root 0644) and points
sshd's AuthorizedKeysFile there alone. Were sshd to read `~/.ssh/authorized_keys` (or `authorized_keys2`, which
Debian's sshd reads by default), or were a file of that folder writable by anyone but root, a person could
authorise another key for their own account, or let someone else in with it.

The check reads `sshd -T` and a listing of the folder made on the host with
`find /etc/ssh/authorized_keys -maxdepth 1 -printf '%U %G %m %y %p\\n'` (uid, gid, octal mode, type, path).
"""

from __future__ import annotations

import shlex

KEYS_DIR = "/etc/ssh/authorized_keys"
KEYS_FILE = f"{KEYS_DIR}/%u"
LISTING_COMMAND = f"find {KEYS_DIR} -maxdepth 1 -printf '%U %G %m %y %p\\n'"
TYPES = {"f": "a file", "d": "a folder", "l": "a symbolic link"}


def sshd_values(sshd_t: str, key: str) -> list[str]:
    """Every value `sshd -T` prints for `key` (lower case), one per line it prints."""
    values = []
    for line in sshd_t.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            values.append(value.strip())
    return values


def key_source_problems(sshd_t: str) -> list[str]:
    """What in sshd's effective settings lets keys come from anywhere but the root-owned files."""
    problems = []
    files = " ".join(sshd_values(sshd_t, "authorizedkeysfile")).split()
    if files != [KEYS_FILE]:
        shown = " ".join(files) if files else "(not printed)"
        problems.append(f"sshd reads authorized keys from {shown}; only {KEYS_FILE} is allowed")
    commands = sshd_values(sshd_t, "authorizedkeyscommand")
    if commands and commands != ["none"]:
        problems.append(f"sshd takes keys from the command {' '.join(commands)}; none is allowed")
    return problems


def key_file_problems(listing: str) -> list[str]:
    """What in the listing of the keys folder a user could change: the folder and each file must be root's,
    writable by root alone, and a real folder and real files (a link could lead to a file anyone owns)."""
    entries = []
    for line in listing.splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5:
            entries.append(parts)
    folder = [e for e in entries if e[4].rstrip("/") == KEYS_DIR]
    if not folder:
        return [f"{KEYS_DIR} is missing"]
    problems = []
    for uid, gid, mode, kind, path in entries:
        wanted = "d" if path.rstrip("/") == KEYS_DIR else "f"
        if kind != wanted:
            problems.append(f"{path} is {TYPES.get(kind, f'of type {kind}')}, not {TYPES[wanted]}")
            continue
        if uid != "0":
            problems.append(f"{path} belongs to uid {uid}, not root")
        if int(mode, 8) & 0o022:
            problems.append(f"{path} has mode {int(mode, 8):04o}: writable by group {gid} or others")
    return problems


def listing_command() -> str:
    """The host command behind `key_file_problems` (its output, even when the folder is missing)."""
    return f"sh -c {shlex.quote(LISTING_COMMAND + ' 2>/dev/null; true')}"
