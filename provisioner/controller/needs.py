"""Every program and file the kit needs on the controller, with the Debian package that brings it: one registry.

`provisioner.controller.shell.run` refuses a program that is not listed here, so the list cannot fall behind the code;
`provision doctor` checks the machine against it, and the install-closure test checks that the Makefile's apt line
(without recommends, on a machine with nothing installed) brings every package named here.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath


class Use(StrEnum):
    """What a need is for; `provision doctor` checks the uses a site (or the test suite) has."""

    CORE = "core"  # every site: Ansible's SSH, keys, signatures
    IMAGES = "images"  # building the Debian base images
    LXC = "lxc"  # the local LXC lab
    LIBVIRT = "libvirt"  # libvirt/KVM with libvirtd and Open vSwitch started by hand
    REPORT = "report"  # the evidence pack: diagram, PDF
    SETUP = "setup"  # `make setup`: the virtualenv and the Python packages that compile
    TESTS = "tests"  # only the test suite runs it
    WATCH = "watch"  # `provision watch`: the scheduler that runs the verification ticks


@dataclass(frozen=True)
class Need:
    name: str  # a program looked up on PATH, or an absolute path (a glob for libraries)
    package: str  # the Debian package on the Makefile's apt line that brings it
    use: Use
    why: str

    @property
    def is_file(self) -> bool:
        return self.name.startswith("/")

    def present(self) -> str | None:
        """Where it is on this machine, or None."""
        if self.is_file:
            found = sorted(glob.glob(self.name))
            return found[0] if found else None
        return shutil.which(self.name)


NEEDS: tuple[Need, ...] = (
    Need("ssh", "openssh-client", Use.CORE, "Ansible's connection to every host; data and probe commands"),
    Need("sftp", "openssh-client", Use.CORE, "Ansible's file transfer"),
    Need("scp", "openssh-client", Use.CORE, "Ansible's file transfer when sftp is refused"),
    Need("ssh-keygen", "openssh-client", Use.CORE, "keys, host keys, and signatures of the ledger and the pack"),
    Need(
        "/lib/systemd/systemd-journal-remote",
        "systemd-journal-remote",
        Use.CORE,
        "receives the production hosts' journals over HTTPS (LOG-1)",
    ),
    Need("journalctl", "systemd", Use.CORE, "reads the journals received from the production hosts (LOG-1)"),
    Need("systemctl", "systemd", Use.WATCH, "starts and stops the watcher's timer where systemd runs"),
    Need(
        "/usr/sbin/cron",
        "cron",
        Use.WATCH,
        "runs the watcher's tick every minute where systemd does not run (the daemon must be running)",
    ),
    Need("debootstrap", "debootstrap", Use.IMAGES, "the base images' minimal Debian system"),
    Need("chroot", "coreutils", Use.IMAGES, "configuring the base images"),
    Need("unshare", "util-linux", Use.IMAGES, "apt inside an image, with /proc and /dev in a private namespace"),
    Need("sh", "dash", Use.IMAGES, "the install script run inside that namespace"),
    Need("lxc-start", "lxc", Use.LXC, "starting lab containers"),
    Need("lxc-stop", "lxc", Use.LXC, "stopping lab containers"),
    Need("lxc-ls", "lxc", Use.LXC, "listing running containers"),
    Need("lxc-info", "lxc", Use.LXC, "a container's state"),
    Need("lxc-config", "lxc", Use.LXC, "where LXC keeps containers"),
    Need("/usr/share/lxc/config/common.conf", "lxc", Use.LXC, "LXC's defaults, included by every container"),
    Need("ip", "iproute2", Use.LXC, "bridges, veths and routes of the lab segments"),
    Need("nft", "nftables", Use.LXC, "the controller's guard table"),
    Need("libvirtd", "libvirt-daemon", Use.LIBVIRT, "the libvirt daemon, started by hand"),
    Need("virtlogd", "libvirt-daemon", Use.LIBVIRT, "libvirt's log daemon"),
    Need(
        "/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so",
        "libvirt-daemon-driver-qemu",
        Use.LIBVIRT,
        "libvirtd's QEMU driver",
    ),
    Need("qemu-system-x86_64", "qemu-system-x86", Use.LIBVIRT, "the guests"),
    Need("qemu-img", "qemu-utils", Use.LIBVIRT, "the guest image's qcow2 disk"),
    Need("mkfs.ext4", "e2fsprogs", Use.LIBVIRT, "the guest image's root file system"),
    Need("genisoimage", "genisoimage", Use.LIBVIRT, "cloud-init seed disks"),
    Need("ovs-vsctl", "openvswitch-switch", Use.LIBVIRT, "Open vSwitch bridges with VLAN tags"),
    Need("ovs-vswitchd", "openvswitch-switch", Use.LIBVIRT, "the Open vSwitch daemon"),
    Need("ovsdb-server", "openvswitch-switch", Use.LIBVIRT, "the Open vSwitch database daemon"),
    Need("ovsdb-tool", "openvswitch-switch", Use.LIBVIRT, "creating the Open vSwitch database"),
    Need("/usr/share/openvswitch/vswitch.ovsschema", "openvswitch-switch", Use.LIBVIRT, "the database schema"),
    Need("getent", "libc-bin", Use.LIBVIRT, "whether libvirtd's qemu account exists"),
    Need("groupadd", "passwd", Use.LIBVIRT, "libvirtd's qemu group"),
    Need("useradd", "passwd", Use.LIBVIRT, "libvirtd's qemu account"),
    Need("dot", "graphviz", Use.REPORT, "the network diagram"),
    Need("/usr/lib/*/libpango-1.0.so.0", "libpango-1.0-0", Use.REPORT, "the PDF (weasyprint)"),
    Need("/usr/lib/*/libpangoft2-1.0.so.0", "libpangoft2-1.0-0", Use.REPORT, "the PDF (weasyprint)"),
    Need("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core", Use.REPORT, "the PDF's font"),
    Need("gcc", "gcc", Use.SETUP, "compiling libvirt-python"),
    Need("pkg-config", "pkg-config", Use.SETUP, "finding libvirt when compiling libvirt-python"),
    Need("/usr/include/libvirt/libvirt.h", "libvirt-dev", Use.SETUP, "compiling libvirt-python"),
    Need("/usr/include/python3.11/Python.h", "python3-dev", Use.SETUP, "compiling against Debian's Python"),
    Need("/usr/lib/python3.11/ensurepip/__init__.py", "python3-venv", Use.SETUP, "the virtualenv on Debian's Python"),
    Need("make", "make", Use.SETUP, "the README's two commands"),
    Need("git", "git", Use.TESTS, "the demo test clones the checkout"),
    Need("lxc-attach", "lxc", Use.TESTS, "tests break a lab host on purpose, from outside"),
    Need("chromium", "chromium", Use.TESTS, "pages and the report in a real browser"),
    Need("pdftotext", "poppler-utils", Use.TESTS, "reading the PDF report back"),
    Need("sha256sum", "coreutils", Use.TESTS, "an auditor's own check of a pack's manifest"),
    Need("bash", "bash", Use.TESTS, "running the commands a pack's VERIFY.md gives the auditor, as written"),
    Need("ssh-keyscan", "openssh-client", Use.TESTS, "reading a fake Proxmox VM's host key from outside"),
    Need("ovs-appctl", "openvswitch-common", Use.TESTS, "whether ovs-vswitchd answers, before the OVS probe test"),
    Need("apt-get", "apt", Use.IMAGES, "checking an image's recipe against the mirror before building it"),
    Need("apt-cache", "apt", Use.TESTS, "the install-closure test: priorities and dependencies"),
    Need("dpkg", "dpkg", Use.TESTS, "the install-closure test: which package owns a program"),
)

_BY_NAME = {need.name: need for need in NEEDS}


class UnregisteredProgram(RuntimeError):
    """A program the code runs is missing from NEEDS: a defect of the kit, not of the machine."""


def program(name: str) -> Need:
    """The registered need for a program (by name or path); raises UnregisteredProgram otherwise."""
    need = _BY_NAME.get(PurePath(name).name) if not name.startswith("/") else _BY_NAME.get(name)
    if need is None and name.startswith("/"):
        need = _BY_NAME.get(PurePath(name).name)
    if need is None:
        raise UnregisteredProgram(f"{name} is run by the code but not listed in provisioner.controller.needs.NEEDS")
    return need


def needed_file(path: str) -> str:
    """A data file the code reads from a package: returns the path, after making sure it is registered."""
    if path not in _BY_NAME:
        raise UnregisteredProgram(f"{path} is read by the code but not listed in provisioner.controller.needs.NEEDS")
    return path


def for_uses(uses: set[Use]) -> list[Need]:
    return [need for need in NEEDS if need.use in uses]


def packages() -> set[str]:
    return {need.package for need in NEEDS}
