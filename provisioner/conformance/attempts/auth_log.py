"""Refused SSH logins and sudo attempts read from a production host's journal (as shipped to the controller).

The hosts run Debian 12's OpenSSH 9.2 with `LogLevel VERBOSE` and sudo 1.9 logging to syslog (authpriv), both
into the journal (roles/audit_logging). One SSH connection or one sudo invocation writes several lines under one
process id; they are grouped by (host, process) so that one attempt counts once:

- sshd: `Failed publickey for alice from 10.20.0.5 port 40112 ssh2: ED25519 SHA256:...` (VERBOSE names the key),
  `Invalid user bob from ... port ...`, `User alice from ... not allowed because not listed in AllowUsers`,
  `Connection closed by authenticating user alice 10.20.0.5 port 40112 [preauth]`, `maximum authentication
  attempts exceeded for ...`. A connection with an `Accepted ...` line is a login, not a refusal (a client may
  offer a wrong key before the right one).
- sudo: `alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`,
  `command not allowed`, `3 incorrect password attempts`, `a password is required` (sudo -n), and PAM's
  `pam_unix(sudo:auth): authentication failure; ... user=alice` when the invocation ran no command.

Each refusal is attributed to a person where the log allows: the key's fingerprint names its holder (whatever
account was tried); otherwise a user name that is a person of the site. The source address names the
environment, access network or management network it lies in. What the log does not tell stays None.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.site.model import Site
from provisioner.site.sshkeys import parse_public_key

SSHD_IDENTIFIERS = ("sshd", "sshd-session")  # OpenSSH 9.8 and later log per connection as sshd-session
SUDO_IDENTIFIER = "sudo"
GROUP_GAP = dt.timedelta(minutes=10)  # a process id seen again after this long is another connection
LINE_CHARS = 300

_FROM_PORT = r"(?P<source>\S+) port (?P<port>\d+)"
_SSHD_REFUSALS = [
    re.compile(
        r"^Failed (?P<method>\S+) for (?:invalid user )?(?P<user>.*?) from "
        + _FROM_PORT
        + r" ssh2(?:: (?P<keytype>\S+) (?P<key>SHA256:[A-Za-z0-9+/]+))?"
    ),
    re.compile(r"^Invalid user (?P<user>.*?) from " + _FROM_PORT + r"$"),
    re.compile(r"^User (?P<user>\S+) from (?P<source>\S+) not allowed because .+$"),
    re.compile(r"^User (?P<user>\S+) not allowed because .+$"),
    re.compile(
        r"^(?:Connection closed by|Disconnected from) (?:authenticating|invalid) user (?P<user>.*?) " + _FROM_PORT
    ),
    re.compile(
        r"^(?:error: )?maximum authentication attempts exceeded for (?:invalid user )?(?P<user>.*?) from " + _FROM_PORT
    ),
]
_SSHD_ACCEPTED = re.compile(r"^Accepted (?P<method>\S+) for (?P<user>.*?) from " + _FROM_PORT)
# sudo 1.9 to syslog: "<user> : <what happened> ; KEY=value ; ..." (the user right-aligned, so leading spaces);
# an accepted command has no reason before its first KEY=value
_SUDO_LINE = re.compile(r"^\s*(?P<user>\S+) : (?P<rest>.*)$")
_SUDO_REFUSALS = re.compile(
    r"^(?:user NOT in sudoers|user NOT authorized on host|command not allowed|a password is required"
    r"|\d+ incorrect password attempts?)$"
)
_PAM_FAILURE = re.compile(r"^pam_\w+\(sudo:auth\): authentication failure;.*?\buser=(?P<user>\S+)")


@dataclass(frozen=True)
class Entry:
    """One journal entry: when (UTC), which program and process, what it said."""

    time: dt.datetime
    identifier: str
    pid: str
    message: str

    @classmethod
    def from_journal(cls, entry: Mapping[str, Any]) -> Entry | None:
        """From `journalctl --output=json`; None for an entry without a time or a message."""
        try:
            micros = int(str(entry.get("__REALTIME_TIMESTAMP", "")))
        except ValueError:
            return None
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journalctl gives a message that is not UTF-8 as a list of bytes
            message = bytes(int(b) for b in message if isinstance(b, int)).decode(errors="replace")
        if not isinstance(message, str):
            return None
        return cls(
            time=dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC),
            # the process's own name as the journal saw it (a trusted field): `logger -t sshd` cannot pass for sshd
            identifier=str(entry.get("_COMM") or entry.get("SYSLOG_IDENTIFIER") or ""),
            pid=str(entry.get("_PID") or entry.get("SYSLOG_PID") or ""),
            message=message,
        )


@dataclass
class Refusal:
    time: dt.datetime
    host: str
    what: str  # ssh | sudo
    user: str
    source: str | None = None
    key: str | None = None  # SHA256 fingerprint of the key offered (sshd at LogLevel VERBOSE)
    line: str = ""
    person: str | None = None
    from_env: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(timespec="seconds"),
            "host": self.host,
            "what": self.what,
            "user": self.user,
            "person": self.person,
            "source": self.source,
            "from_env": self.from_env,
            "key": self.key,
            "line": self.line[:LINE_CHARS],
        }


def _groups(entries: Iterable[Entry], identifiers: tuple[str, ...]) -> list[list[Entry]]:
    """The entries of one program, grouped by process id in time order; a pid seen again after GROUP_GAP starts
    a new group (the pid was reused)."""
    open_groups: dict[str, list[Entry]] = {}
    done: list[list[Entry]] = []
    for entry in sorted((e for e in entries if e.identifier in identifiers), key=lambda e: e.time):
        group = open_groups.get(entry.pid)
        if group is not None and entry.time - group[-1].time > GROUP_GAP:
            done.append(group)
            group = None
        if group is None:
            group = open_groups[entry.pid] = []
        group.append(entry)
    return sorted([*done, *open_groups.values()], key=lambda g: g[0].time)


def sshd_refusals(host: str, entries: Iterable[Entry]) -> list[Refusal]:
    """One refusal per SSH connection that was refused and never accepted."""
    found = []
    for group in _groups(entries, SSHD_IDENTIFIERS):
        if any(_SSHD_ACCEPTED.match(e.message) for e in group):
            continue
        matches = [(e, m) for e in group for m in [_first_match(_SSHD_REFUSALS, e.message)] if m is not None]
        if not matches:
            continue
        first, match = matches[0]
        refusal = Refusal(time=first.time, host=host, what="ssh", user=match["user"], line=first.message)
        for _entry, m in matches:
            values = m.groupdict()
            refusal.source = refusal.source or values.get("source")
            refusal.key = refusal.key or values.get("key")
        found.append(refusal)
    return found


def sudo_refusals(host: str, entries: Iterable[Entry]) -> list[Refusal]:
    """One refusal per sudo invocation that sudo refused, or whose authentication failed and that ran nothing."""
    found = []
    for group in _groups(entries, (SUDO_IDENTIFIER,)):
        refused: tuple[Entry, str] | None = None
        pam_failed: tuple[Entry, str] | None = None
        ran = False
        for entry in group:
            line = _SUDO_LINE.match(entry.message)
            pam = _PAM_FAILURE.match(entry.message)
            if pam is not None:
                pam_failed = pam_failed or (entry, pam["user"])
            elif line is not None:
                reason = line["rest"].split(" ; ", 1)[0].strip()
                if "=" in reason:
                    ran = ran or "COMMAND=" in line["rest"]
                elif _SUDO_REFUSALS.match(reason):
                    refused = refused or (entry, line["user"])
        chosen = refused or (pam_failed if not ran else None)
        if chosen is not None:
            entry, user = chosen
            found.append(Refusal(time=entry.time, host=host, what="sudo", user=user, line=entry.message.strip()))
    return found


def _first_match(patterns: list[re.Pattern[str]], message: str) -> re.Match[str] | None:
    for pattern in patterns:
        match = pattern.match(message)
        if match is not None:
            return match
    return None


# ---- who and from where ---------------------------------------------------------------------------------
def fingerprint(public_key: str) -> str:
    """`SHA256:<base64 without padding>` of an OpenSSH public key, as sshd and ssh-keygen -l print it."""
    digest = hashlib.sha256(parse_public_key(public_key).blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Attribution:
    """The site's people by name and by key fingerprint, and its networks by address."""

    people: frozenset[str]
    keys: Mapping[str, str]  # fingerprint -> person
    networks: tuple[tuple[ipaddress.IPv4Network, str], ...]  # (cidr, environment / access network / mgmt)

    @classmethod
    def of(cls, site: Site) -> Attribution:
        networks = [(e.segment.cidr, e.name) for e in site.environments]
        networks += [(a.cidr, a.name) for a in site.access_networks]
        networks.append((site.management.cidr, "mgmt"))
        return cls(
            people=frozenset(p.name for p in site.people),
            keys={fingerprint(p.ssh_key): p.name for p in site.people},
            networks=tuple(sorted(networks, key=lambda n: n[0].prefixlen, reverse=True)),
        )

    def person(self, user: str, key: str | None) -> str | None:
        """The key's holder when the key is a person's (whatever account they tried), else the account's person."""
        if key is not None and key in self.keys:
            return self.keys[key]
        return user if user in self.people else None

    def environment(self, source: str | None) -> str | None:
        try:
            address = ipaddress.ip_address(source or "")
        except ValueError:
            return None
        return next((name for cidr, name in self.networks if address in cidr), None)

    def apply(self, refusal: Refusal) -> Refusal:
        refusal.person = self.person(refusal.user, refusal.key)
        refusal.from_env = self.environment(refusal.source)
        return refusal


def refusals(host: str, journal: Iterable[Mapping[str, Any]], attribution: Attribution) -> list[Refusal]:
    """Refused SSH logins and sudo attempts in one host's journal entries, attributed, in time order."""
    entries = [e for e in (Entry.from_journal(j) for j in journal) if e is not None]
    found = sshd_refusals(host, entries) + sudo_refusals(host, entries)
    return sorted((attribution.apply(r) for r in found), key=lambda r: r.time)


def by_person(found: Iterable[Refusal]) -> dict[str, dict[str, int]]:
    """{person or '?': {"ssh": n, "sudo": n}}"""
    counts: dict[str, dict[str, int]] = {}
    for refusal in found:
        counts.setdefault(refusal.person or "?", {"ssh": 0, "sudo": 0})[refusal.what] += 1
    return dict(sorted(counts.items()))
