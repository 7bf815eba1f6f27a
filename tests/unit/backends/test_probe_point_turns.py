"""Checks in several verify workers take turns at a probe point (NET-2 and ACC-3 both start from the development
segment): one never tears down the namespace another is attempting from. The turn is a lock per probe point, held
for the whole `attached` block and released when its holder ends, however it ends."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from provisioner.backends.network import probe_point
from provisioner.backends.network.probe_point import ProbePoint


def point(segment: str) -> ProbePoint:
    return ProbePoint(
        "shop", segment, "br-test", ipaddress.IPv4Interface("10.90.10.254/24"), ipaddress.IPv4Address("10.90.10.1")
    )


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    folder = tmp_path / "probes"
    monkeypatch.setattr(probe_point, "LOCK_DIR", folder)
    return folder


def test_a_second_check_waits_until_the_first_has_finished_with_the_probe(lock_dir):
    events: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with point("dev")._turn():
            events.append("first in")
            first_holds.set()
            time.sleep(0.5)
            events.append("first out")

    def second() -> None:
        first_holds.wait(5)
        with point("dev")._turn():
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert events == ["first in", "first out", "second in"]
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700, "the lock folder is root's own"


def test_probe_points_on_different_segments_do_not_wait_for_each_other(lock_dir):
    entered = threading.Event()

    def other() -> None:
        with point("test")._turn():
            entered.set()

    with point("dev")._turn():
        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(5), "the test segment's probe is free while dev's is held"
    thread.join(5)


def test_a_killed_holder_releases_its_turn(lock_dir):
    lock_dir.mkdir(mode=0o700)
    lock = lock_dir / f"{point('dev').namespace}.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(5)
        started = time.monotonic()
        with point("dev")._turn():
            assert time.monotonic() - started < 5
    finally:
        if holder.poll() is None:
            holder.kill()


def test_the_lock_file_is_never_followed_through_a_link(lock_dir, tmp_path):
    lock_dir.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    os.symlink(elsewhere, lock_dir / f"{point('dev').namespace}.lock")
    with pytest.raises(OSError), point("dev")._turn():
        pass
    assert not elsewhere.exists()
