"""`provision doctor`: is this machine able to run a backend (or the test suite)? Checks only; changes nothing.

Programs and files come from the one registry (host_needs); kernel features are tried for real in a throwaway
network namespace (a bridge, a veth pair, an nftables table), so a kernel that lists a feature but refuses it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from provisioner.controller import collection_pins
from provisioner.controller import needs as host_needs
from provisioner.controller.needs import Use
from provisioner.controller.scheduler import cron_daemon_pids

BACKEND_USES: dict[str, set[Use]] = {
    "lxc": {Use.CORE, Use.IMAGES, Use.LXC, Use.REPORT},
    "libvirt": {Use.CORE, Use.IMAGES, Use.LIBVIRT, Use.REPORT},
    "proxmox": {Use.CORE, Use.REPORT},
}
GIB = 1024**3
# Free space each backend needs where it writes: the LXC base (~0.7 GiB) and clones, the guest image and disks.
DISK_NEEDS: dict[str, tuple[tuple[str, float], ...]] = {
    "lxc": (("/var/lib/lxc", 3), ("/var/cache/provisioner", 1)),
    "libvirt": (("/var/lib/provisioner", 6), ("/var/lib/libvirt", 4), ("/var/cache/provisioner", 1)),
    "proxmox": (),
}
# Each tried as root inside `unshare --net`: the namespace and everything in it vanish with the process.
KERNEL_TRIALS = {
    "bridge": ("ip", "ip link add doctor-br0 type bridge"),
    "veth": ("ip", "ip link add doctor-v0 type veth peer name doctor-v1"),
    "nf_tables": ("nft", "nft add table inet doctor"),
}


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""
    package: str = ""  # the Debian package that fixes it, where one does


def examine(
    backends: set[str], suite: bool = False, libvirt_daemons_required: bool = False, watcher: str | None = None
) -> list[Finding]:
    """`watcher`: the scheduler of the site's installed watcher (systemd or cron), None when there is none."""
    uses = set().union(*(BACKEND_USES[b] for b in backends))
    if suite:
        uses |= {Use.SETUP, Use.TESTS, Use.WATCH}
    findings = [_need(need) for need in host_needs.for_uses(uses)]
    if backends & {"lxc", "libvirt"}:
        findings.append(_root())
        findings += _kernel(with_overlay="lxc" in backends)
    disk: dict[str, float] = {}
    for backend in sorted(backends):
        for path, gib in DISK_NEEDS[backend]:
            disk[path] = max(gib, disk.get(path, 0))
    findings += [_disk(path, gib) for path, gib in sorted(disk.items())]
    if "libvirt" in backends:
        findings += _libvirt_daemons(required=libvirt_daemons_required)
    findings.append(_collections())
    if watcher is not None:
        findings += watch_findings(watcher, with_programs=not suite)
    return findings


def watch_findings(scheduler: str, with_programs: bool = True, proc: Path = Path("/proc")) -> list[Finding]:
    """What the installed watcher's scheduler needs; for cron, a running cron daemon (else nothing is verified)."""
    programs = [n for n in host_needs.for_uses({Use.WATCH}) if (n.name == "systemctl") == (scheduler == "systemd")]
    found = [_need(need) for need in programs] if with_programs else []
    if scheduler == "cron":
        pids = cron_daemon_pids(proc)
        found.append(
            Finding("daemon cron", True, f"running, pid {', '.join(map(str, pids))}")
            if pids
            else Finding(
                "daemon cron",
                False,
                "not running: the watcher's ticks never start, so nothing is verified on schedule",
                "start the cron daemon (as root: cron; where systemd runs: systemctl start cron)",
            )
        )
    return found


def _collections(root: Path | None = None) -> Finding:
    """The pinned Ansible collections the roles use (collections/requirements.yml), as `make venv` installs them."""
    root = root or collection_pins.collections_root()
    lacking = collection_pins.missing(root)
    if not lacking:
        return Finding("ansible collections", True, ", ".join(str(c) for c in collection_pins.PINNED))
    found = ", ".join(f"{c.fqcn} {collection_pins.installed_version(root, c) or 'absent'}" for c in lacking)
    wanted = ", ".join(str(c) for c in lacking)
    return Finding("ansible collections", False, f"{found} in {root}; the roles need {wanted}", "make venv")


def fix_command(findings: list[Finding]) -> str | None:
    """One apt command for every missing package, or None."""
    packages = sorted({f.package for f in findings if not f.ok and f.package})
    return f"apt-get install --no-install-recommends {' '.join(packages)}" if packages else None


def _need(need: host_needs.Need) -> Finding:
    where = need.present()
    kind = "file" if need.is_file else "program"
    if where:
        return Finding(f"{kind} {need.name}", True, where)
    return Finding(f"{kind} {need.name}", False, f"missing: {need.why} (package {need.package})",
                   f"apt-get install --no-install-recommends {need.package}", need.package)  # fmt: skip


def _root() -> Finding:
    if os.geteuid() == 0:
        return Finding("root", True, "running as root")
    return Finding("root", False, "the LXC and libvirt labs make bridges and containers: they need root",
                   "run provision as root")  # fmt: skip


def _kernel(with_overlay: bool) -> list[Finding]:
    found = []
    for feature, (program, command) in KERNEL_TRIALS.items():
        lacking = [p for p in ("unshare", program) if shutil.which(p) is None]
        if lacking:
            found.append(Finding(f"kernel {feature}", False, f"not tried: {' and '.join(lacking)} missing"))
            continue
        result = subprocess.run(["unshare", "--net", "sh", "-c", command], capture_output=True, text=True,
                                check=False, timeout=30)  # fmt: skip
        detail = "works" if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")
        found.append(
            Finding(
                f"kernel {feature}",
                result.returncode == 0,
                detail,
                "" if result.returncode == 0 else f"this kernel refuses {feature}: use another backend",
            )
        )
    filesystems = Path("/proc/filesystems").read_text()
    if with_overlay:
        ok = "\toverlay\n" in filesystems
        found.append(Finding("kernel overlayfs", ok, "listed in /proc/filesystems" if ok else "not available",
                             "" if ok else "lab hosts are overlay clones: this kernel needs overlayfs"))  # fmt: skip
    mounts = Path("/proc/mounts").read_text().split("\n")
    cgroups = sorted({line.split()[2] for line in mounts if line.split()[2:3] in (["cgroup"], ["cgroup2"])})
    found.append(Finding("kernel cgroups", bool(cgroups), f"mounted: {', '.join(cgroups)}" if cgroups else "none",
                         "" if cgroups else "mount the cgroup file systems (containers need them)"))  # fmt: skip
    return found


def _disk(path: str, gib: float) -> Finding:
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / GIB
    ok = free >= gib
    return Finding(f"disk {path}", ok, f"{free:.1f} GiB free (needs {gib:g})",
                   "" if ok else f"free at least {gib - free:.1f} GiB on the file system of {probe}")  # fmt: skip


def _libvirt_daemons(required: bool) -> list[Finding]:
    from provisioner.backends.libvirt import daemons

    found = []
    for name, pid in daemons.status().items():
        if pid is not None:
            found.append(Finding(f"daemon {name}", True, f"running, pid {pid}"))
        else:
            detail = "not running" + ("" if required else " (the libvirt lab test starts its own)")
            found.append(Finding(f"daemon {name}", not required, detail, "make libvirt-up"))
    return found
