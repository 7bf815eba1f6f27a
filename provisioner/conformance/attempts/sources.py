"""Where the attempts are read: the gateway over SSH (its counters and its kernel log) and the production hosts'
journals as the controller's log receiver got them (LOG-1: `remote-<address>.journal` in the site's host-logs
folder, named by the sending address, with the receiver's rotated files `remote-<address>@....journal` beside)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from provisioner.backends.network import log_receiver
from provisioner.conformance import reachability
from provisioner.conformance.attempts.auth_log import SSHD_IDENTIFIERS, SUDO_IDENTIFIER, Entry
from provisioner.controller.shell import run
from provisioner.errors import ProvisionError
from provisioner.remote.ssh import Remote
from provisioner.site.model import Host, Site
from provisioner.workspace.site_state import SiteState

DENY_LOG_PREFIX = "pv-deny "  # roles/env_gateway: env_gateway_log_prefix (the role's default; the site keeps it)
GATEWAY_ENTRIES = 5000  # kernel entries read from the gateway at most (the deny log is rate-limited per pair)
JOURNAL_TIMEOUT = 120


class Unreadable(Exception):
    """Why a source could not be read; the text goes into the evidence."""


class Sources(Protocol):
    def now(self) -> dt.datetime: ...

    def gateway_counters(self) -> dict[str, int]: ...

    def gateway_journal(self, since: dt.datetime, until: dt.datetime) -> list[Mapping[str, Any]]: ...

    def host_journal(self, host: Host, after: str | None, since: dt.datetime | None) -> list[Mapping[str, Any]]: ...


class LiveSources:
    """The real ones: SSH to the gateway as the automation account (as the conformance suite does), journalctl
    on the controller's copies of the production journals."""

    def __init__(self, site: Site, state: SiteState):
        self.site = site
        self.state = state
        self._remote: Remote | None = None

    @property
    def remote(self) -> Remote:
        if self._remote is None:
            self._remote = Remote(self.state)
        return self._remote

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _on_gateway(self, command: str) -> str:
        gateway = str(self.site.management.gateway)
        if not known_host(self.state.known_hosts, gateway):
            raise Unreadable(f"the gateway {gateway}'s host key is not known here (`provision apply` pins it)")
        try:
            result = self.remote.run_as_root(gateway, command)
        except Exception as exc:  # testinfra raises its own errors for a host it cannot reach
            raise Unreadable(f"the gateway {gateway} could not be reached over SSH: {_first_line(str(exc))}") from exc
        if not result.ok:
            detail = _first_line(result.stderr or result.stdout) or f"exit {result.rc}"
            raise Unreadable(f"`{command.split()[0]}` on the gateway {gateway} failed: {detail}")
        return result.stdout

    def gateway_counters(self) -> dict[str, int]:
        output = self._on_gateway(f"nft -j list counters table inet {reachability.GATEWAY_TABLE}")
        try:
            return reachability.parse_counters(json.loads(output))
        except (ValueError, TypeError, AttributeError) as exc:
            raise Unreadable(f"the gateway's counters are not nft's JSON: {exc}") from exc

    def gateway_journal(self, since: dt.datetime, until: dt.datetime) -> list[Mapping[str, Any]]:
        output = self._on_gateway(
            f"journalctl --no-pager --output=json --lines={GATEWAY_ENTRIES} _TRANSPORT=kernel {_bounds(since, until)}"
        )
        return _json_lines(output)

    def host_journal(self, host: Host, after: str | None, since: dt.datetime | None) -> list[Mapping[str, Any]]:
        """The sshd and sudo entries of `host`'s copy in the order they reached the controller: those after the
        cursor `after` (an entry read before), else those stamped from `since` on, else all."""
        files = journal_files(self.state.host_logs_dir, str(host.address))
        if not files:
            raise Unreadable(
                f"no copy of {host.name}'s journal on the controller (remote-{host.address}.journal in "
                f"{self.state.host_logs_dir}): the log receiver has received nothing from it"
            )
        identifiers = [f"SYSLOG_IDENTIFIER={name}" for name in (*SSHD_IDENTIFIERS, SUDO_IDENTIFIER)]
        if after is not None:
            position = [f"--after-cursor={after}"]
        else:
            position = [f"--since=@{math.floor(since.timestamp())}"] if since is not None else []
        try:
            found = run(
                ["journalctl", "--no-pager", "--output=json", *(f"--file={f}" for f in files), *position,
                 *identifiers],
                check=False, timeout=JOURNAL_TIMEOUT,
            )  # fmt: skip
        except ProvisionError as exc:
            raise Unreadable(f"{host.name}'s journal copy could not be read: {exc}") from exc
        if found.returncode != 0 and not found.stdout.strip():
            raise Unreadable(f"journalctl could not read {host.name}'s journal copy: {_first_line(found.stderr)}")
        return _json_lines(found.stdout)


def known_host(known_hosts: Path, address: str) -> bool:
    """Whether the site's known_hosts (as apply writes it: `<address> <key>` per line) pins `address`: SSH runs with
    StrictHostKeyChecking=yes, so without it no connection is tried."""
    try:
        lines = known_hosts.read_text().splitlines()
    except OSError:
        return False
    return any(address in line.split(" ", 1)[0].split(",") for line in lines if line.strip())


def journal_files(folder: Path, address: str) -> list[Path]:
    """The receiver's files for one sending address: the active one and its rotated ones (`@` after the name), not
    those of an address that merely starts the same (10.0.0.5 is not 10.0.0.50)."""
    if not folder.is_dir():
        return []
    stem = f"remote-{address}"
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and (path.name in (f"{stem}.journal", f"{stem}.journal~") or path.name.startswith(f"{stem}@"))
    )


def deny_lines(journal: list[Mapping[str, Any]], since: dt.datetime, until: dt.datetime) -> list[str]:
    """The gateway's deny log lines in the window, oldest first, as '<time> <message>'."""
    lines = []
    for raw in journal:
        entry = Entry.from_journal(raw)
        if entry is None or not since <= entry.time < until:
            continue
        if DENY_LOG_PREFIX in entry.message:
            lines.append((entry.time, f"{entry.time.isoformat(timespec='seconds')} {entry.message.strip()}"))
    return [line for _time, line in sorted(lines)]


def _bounds(since: dt.datetime, until: dt.datetime) -> str:
    """journalctl's --since/--until in whole seconds around the window (the exact bounds are applied after)."""
    return f"--since=@{math.floor(since.timestamp())} --until=@{math.ceil(until.timestamp())}"


def _json_lines(text: str) -> list[Mapping[str, Any]]:
    return list(log_receiver.journal_entries(text))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else ""
