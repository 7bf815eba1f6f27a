"""The log receiver's lifecycle with the real systemd-journal-remote on the loopback address: apply's `ensure` keeps
a receiver that runs with the site's arguments, replaces one started with other arguments, and never stops a
process that is not this site's receiver."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.backends.network.log_receiver import LogReceiver
from provisioner.workspace import log_tls

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    log_tls.ensure_authority(secrets, "unit")
    tls = log_tls.ensure_receiver(secrets, "unit", LOOPBACK)
    started: list[LogReceiver] = []

    def make(port: int) -> LogReceiver:
        made = LogReceiver("unit", LOOPBACK, tmp_path / "evidence" / "host-logs", tls, port)
        started.append(made)
        return made

    yield make
    for made in started:
        pid = made._own_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1]
    except OSError:
        return False
    return not state.startswith("Z")


def test_a_running_receiver_with_the_sites_arguments_is_kept(receiver):
    first = receiver(_free_port())
    assert first.ensure() is True
    pid = first.pid()
    assert pid is not None and _alive(pid)
    assert first.ensure() is False, "a second apply restarted a receiver that already ran as wanted"
    assert first.pid() == pid
    assert oct(first.folder.stat().st_mode & 0o777) == "0o700"


def test_a_receiver_with_an_old_port_is_replaced_not_left_running(receiver):
    old = receiver(_free_port())
    old.ensure()
    old_pid = old.pid()
    assert old_pid is not None
    new = receiver(_free_port())  # the same site and folder, another port (a changed address works alike)
    assert new.pid() is None, "a receiver with other arguments passed for the wanted one"
    assert new.ensure() is True
    assert not _alive(old_pid), "the receiver with the old port still runs beside the new one"
    new_pid = new.pid()
    assert new_pid is not None and new_pid != old_pid and _alive(new_pid)
    with socket.create_connection(("127.0.0.1", new.port), timeout=5):
        pass
    new.stop()
    assert not _alive(new_pid)
    assert not new.pid_file.exists()


def test_a_pid_file_naming_another_program_stops_nothing(receiver, tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        made = receiver(_free_port())
        made.folder.parent.mkdir(parents=True)
        made.pid_file.write_text(f"{other.pid}\n")  # a pid reused by another program after a reboot
        made.stop()
        assert other.poll() is None, "stop killed a process that is not the site's receiver"
        assert not made.pid_file.exists()
    finally:
        other.kill()
        other.wait()
