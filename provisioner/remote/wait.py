"""Waiting until machines answer SSH: the moment a backend hands them to Ansible."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable

from provisioner.errors import BackendError


def ssh_answers(address: str, banner_seconds: float = 2) -> bool:
    """True once something on port 22 speaks the SSH protocol (not merely accepts the connection)."""
    try:
        with socket.create_connection((address, 22), timeout=1) as sock:
            sock.settimeout(banner_seconds)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(
    pending: dict[str, str], seconds: float, interval: float = 0.3, banner_seconds: float = 2
) -> dict[str, str]:
    """address -> name; returns the ones still silent after `seconds`."""
    left = dict(pending)
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        for address in list(left):
            if ssh_answers(address, banner_seconds):
                del left[address]
        if left:
            time.sleep(interval)
    return left


def require_ssh(
    machines: Iterable[tuple[str, str]],
    seconds: float,
    say: Callable[[str], None],
    suffix: str = "",
    *,
    what: str = "machine(s)",
    interval: float = 0.3,
    banner_seconds: float = 2,
) -> None:
    """(address, name) pairs must all answer SSH within `seconds`, else a BackendError naming the silent ones
    followed by `suffix` (where to look next)."""
    pending = dict(machines)
    if not pending:
        return
    say(f"waiting for SSH on {len(pending)} {what}")
    silent = wait_for_ssh(pending, seconds, interval, banner_seconds)
    if silent:
        names = ", ".join(f"{name} ({address})" for address, name in silent.items())
        raise BackendError(f"SSH did not answer within {seconds:.0f}s on {names}{suffix}")
