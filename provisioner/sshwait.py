"""Waiting until machines answer SSH: the moment a backend hands them to Ansible."""

from __future__ import annotations

import socket
import time


def ssh_answers(address: str) -> bool:
    """True once something on port 22 speaks the SSH protocol (not merely accepts the connection)."""
    try:
        with socket.create_connection((address, 22), timeout=1) as sock:
            sock.settimeout(2)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(pending: dict[str, str], seconds: float, interval: float = 0.3) -> dict[str, str]:
    """address -> name; returns the ones still silent after `seconds`."""
    left = dict(pending)
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        for address in list(left):
            if ssh_answers(address):
                del left[address]
        if left:
            time.sleep(interval)
    return left
