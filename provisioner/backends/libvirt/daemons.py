"""Start and stop libvirtd/virtlogd and Open vSwitch by hand, for machines where PID 1 is not systemd.

Idempotent: a daemon already running is left alone, and `stop` ends only the daemons `start` started
(recorded in /run/provisioner-libvirt/started). Usage:

    python -m provisioner.backends.libvirt.daemons start|stop|status
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from provisioner.controller.shell import run
from provisioner.errors import BackendError

RECORD = Path("/run/provisioner-libvirt/started")
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# Guests run as root without a security driver: there is no AppArmor/SELinux and no udev to relabel devices.
QEMU_SETTINGS = {"user": '"root"', "group": '"root"', "security_driver": '"none"', "dynamic_ownership": "0"}
QEMU_CONF_MARK = "# provisioner: libvirtd started by hand (provisioner.backends.libvirt.daemons)"
OVS_DB = Path("/etc/openvswitch/conf.db")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
OVS_RUN = Path("/var/run/openvswitch")
LIBVIRT_SOCKET = Path("/run/libvirt/libvirt-sock")


@dataclass(frozen=True)
class Daemon:
    name: str
    pidfile: Path
    command: tuple[str, ...]

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm and self.name.startswith(comm[:15]) else None


VIRTLOGD = Daemon("virtlogd", Path("/run/virtlogd.pid"), ("virtlogd", "-d"))
LIBVIRTD = Daemon("libvirtd", Path("/run/libvirtd.pid"), ("libvirtd", "-d"))
OVSDB = Daemon(
    "ovsdb-server",
    OVS_RUN / "ovsdb-server.pid",
    (
        "ovsdb-server",
        str(OVS_DB),
        f"--remote=punix:{OVS_RUN}/db.sock",
        "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
        "--pidfile",
        "--detach",
        "--log-file=/var/log/openvswitch/ovsdb-server.log",
    ),
)
VSWITCHD = Daemon(
    "ovs-vswitchd",
    OVS_RUN / "ovs-vswitchd.pid",
    (
        "ovs-vswitchd",
        f"unix:{OVS_RUN}/db.sock",
        "--pidfile",
        "--detach",
        "--log-file=/var/log/openvswitch/ovs-vswitchd.log",
    ),
)
ORDER = (OVSDB, VSWITCHD, VIRTLOGD, LIBVIRTD)


def _ensure_qemu_user() -> None:
    """libvirtd exits at start when the libvirt-qemu user its QEMU driver defaults to is missing."""
    if run(["getent", "group", "libvirt-qemu"], check=False).returncode != 0:
        run(["groupadd", "--system", "libvirt-qemu"])
    if run(["getent", "passwd", "libvirt-qemu"], check=False).returncode != 0:
        run(
            ["useradd", "--system", "--gid", "libvirt-qemu", "--home-dir", "/var/lib/libvirt", "--no-create-home",
             "--shell", "/usr/sbin/nologin", "libvirt-qemu"]
        )  # fmt: skip


def _ensure_qemu_conf() -> None:
    text = QEMU_CONF.read_text() if QEMU_CONF.exists() else ""
    wanted = [f"{key} = {value}" for key, value in QEMU_SETTINGS.items()]
    if QEMU_CONF_MARK in text and all(line in text for line in wanted):
        return
    kept = [
        line
        for line in text.splitlines()
        if line != QEMU_CONF_MARK and line.split("=", 1)[0].strip() not in QEMU_SETTINGS
    ]
    QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
    QEMU_CONF.write_text("\n".join([*kept, QEMU_CONF_MARK, *wanted]) + "\n")


def _ensure_ovs_db() -> None:
    if not OVS_DB.exists():
        OVS_DB.parent.mkdir(parents=True, exist_ok=True)
        run(["ovsdb-tool", "create", str(OVS_DB), str(OVS_SCHEMA)])
    elif run(["ovsdb-tool", "needs-conversion", str(OVS_DB), str(OVS_SCHEMA)], check=False).stdout.strip() == "yes":
        run(["ovsdb-tool", "convert", str(OVS_DB), str(OVS_SCHEMA)])
    OVS_RUN.mkdir(parents=True, exist_ok=True)
    Path("/var/log/openvswitch").mkdir(parents=True, exist_ok=True)


def _started() -> set[str]:
    return set(RECORD.read_text().split()) if RECORD.exists() else set()


def _record(names: set[str]) -> None:
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text("".join(f"{n}\n" for n in sorted(names)))


def _wait(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise BackendError(f"{what} did not come up within {seconds:.0f}s")


def start(say=print) -> list[str]:
    """Start whatever of the four daemons is not running; returns the names started now."""
    if os.geteuid() != 0:
        raise BackendError("starting libvirtd and Open vSwitch needs root")
    _ensure_qemu_user()
    _ensure_qemu_conf()
    _ensure_ovs_db()
    for directory in ("/var/log/libvirt/qemu", "/var/lib/libvirt/qemu", "/run/libvirt"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    started = []
    for daemon in ORDER:
        if daemon.pid() is not None:
            continue
        say(f"starting {daemon.name}")
        run(daemon.command, timeout=60)
        _record(_started() | {daemon.name})  # recorded at once: a later failure must not orphan it
        _wait(lambda d=daemon: d.pid() is not None, daemon.name)
        started.append(daemon.name)
        if daemon is OVSDB:
            run(["ovs-vsctl", "--no-wait", "init"])
    _wait(LIBVIRT_SOCKET.exists, "the libvirtd socket")
    return started


def stop(say=print, only: list[str] | None = None) -> list[str]:
    """Stop the daemons that `start` started (libvirtd first), or only those named; others are left running."""
    mine = _started() if only is None else _started() & set(only)
    stopped = []
    for daemon in reversed(ORDER):
        pid = daemon.pid()
        if daemon.name not in mine or pid is None:
            continue
        say(f"stopping {daemon.name} (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while daemon.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(daemon.name)
    _record(_started() - set(stopped))
    return stopped


def status() -> dict[str, int | None]:
    return {d.name: d.pid() for d in ORDER}


def main(argv: list[str]) -> int:
    verb = argv[1] if len(argv) > 1 else "status"
    if verb == "start":
        start()
    elif verb == "stop":
        stop()
    elif verb != "status":
        print(f"usage: {argv[0]} start|stop|status", file=sys.stderr)
        return 2
    for name, pid in status().items():
        print(f"{name}: {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
