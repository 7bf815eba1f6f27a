"""LXC containers as overlay clones of the base image, labelled so they can be found again."""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provisioner.backends.lxc import idmap
from provisioner.controller.shell import run
from provisioner.workspace.hostkeys import HostKey

LABELS_FILE = "provisioner.json"
# LXC's own defaults for every container (package liblxc-common); nothing from the templates package is used.
COMMON_CONFIG = "/usr/share/lxc/config/common.conf"
# systemd in every container takes inotify instances from root's host-wide budget (default 128): with a
# few labs running, new containers stall at boot ("Too many open files") unless the budget is raised.
HOST_LIMITS = {"/proc/sys/fs/inotify/max_user_instances": 8192, "/proc/sys/fs/inotify/max_user_watches": 1048576}


@dataclass(frozen=True)
class SeedFile:
    """A file placed in the clone's overlay before its first start."""

    path: str  # absolute path inside the container
    content: bytes
    mode: int = 0o644
    uid: int = 0  # ids inside the container: written shifted (idmap)
    gid: int = 0
    kind: str = "file"  # "file", "dir" (content ignored) or "symlink" (content is the target)


@dataclass
class Container:
    name: str
    directory: Path
    labels: dict[str, str]

    @property
    def complete(self) -> bool:
        return self.labels.get("state") == "ready" and (self.directory / "config").is_file()


def read_labels(directory: Path) -> dict[str, str] | None:
    try:
        return json.loads((directory / LABELS_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_labels(directory: Path, labels: dict[str, str]) -> None:
    tmp = directory / f".{LABELS_FILE}.tmp"
    tmp.write_text(json.dumps(labels, indent=1, sort_keys=True))
    os.replace(tmp, directory / LABELS_FILE)


def find_labelled(lxcpath: Path, match: dict[str, str]) -> list[Container]:
    """Containers whose labels carry every key=value of match."""
    found = []
    for directory in sorted(lxcpath.iterdir()) if lxcpath.is_dir() else []:
        labels = read_labels(directory)
        if labels and all(labels.get(key) == value for key, value in match.items()):
            found.append(Container(directory.name, directory, labels))
    return found


def list_site_containers(lxcpath: Path, site: str) -> list[Container]:
    return find_labelled(lxcpath, {"site": site, "managed-by": "provisioner"})


def running_names() -> set[str]:
    return set(run(["lxc-ls", "--running", "-1"]).stdout.split())


def is_running(name: str) -> bool:
    return run(["lxc-info", "-n", name, "-s", "-H"], check=False).stdout.strip() == "RUNNING"


def _mirror_dirs(base_rootfs: Path, delta: Path, inner_dir: str) -> Path:
    """Create inner_dir in the overlay upper layer with the base's owner and mode, parent by parent (a folder the
    base lacks belongs to the container's root)."""
    target = delta
    for part in Path(inner_dir).relative_to("/").parts:
        target = target / part
        base_dir = base_rootfs / target.relative_to(delta)
        if not target.exists():
            target.mkdir()
            if base_dir.is_dir():
                st = base_dir.stat()
                os.chown(target, st.st_uid, st.st_gid)
                target.chmod(stat.S_IMODE(st.st_mode))
            else:
                os.chown(target, idmap.to_host(0), idmap.to_host(0))
    return target


def make_directory(directory: Path) -> Path:
    """A container's folder and its overlay's upper layer; the upper layer, returned.

    LXC mounts the overlay as the container's mapped root, which must pass through the folder (group, read-only)
    and create the overlay's work folder; the folder itself, with the config and labels, stays root's.
    """
    root = idmap.to_host(0)
    directory.mkdir(mode=0o750)
    os.chown(directory, 0, root)
    directory.chmod(0o750)
    overlay = directory / "overlay"
    overlay.mkdir(mode=0o755)
    os.chown(overlay, root, root)
    delta = overlay / "delta"
    delta.mkdir(mode=0o755)
    os.chown(delta, root, root)
    return delta


def create_clone(
    lxcpath: Path, name: str, base_rootfs: Path, labels: dict[str, str], config: str, files: list[SeedFile]
) -> None:
    """Labels first (state=building), then the overlay seed, then the config, then state=ready.

    Whatever point an interruption hits, the directory is found again by its labels and replaced.
    """
    directory = lxcpath / name
    delta = make_directory(directory)
    write_labels(directory, {**labels, "state": "building"})
    write_seed(base_rootfs, delta, files)
    write_config(directory, config)
    write_labels(directory, {**labels, "state": "ready"})


def write_seed(base_rootfs: Path, delta: Path, files: list[SeedFile]) -> None:
    """Place files in an overlay upper layer; only while the container is stopped (its overlay unmounted).
    Owners are the container's ids, shifted to the host ids the container maps them from."""
    for seed in files:
        parent = _mirror_dirs(base_rootfs, delta, str(Path(seed.path).parent))
        target = parent / Path(seed.path).name
        uid, gid = idmap.to_host(seed.uid), idmap.to_host(seed.gid)
        if seed.kind == "symlink":
            target.unlink(missing_ok=True)
            target.symlink_to(seed.content.decode())
            os.lchown(target, uid, gid)
            continue
        if seed.kind == "dir":
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(seed.content)
        os.chown(target, uid, gid)
        target.chmod(seed.mode)


def effective_file(base_rootfs: Path, delta: Path, inner_path: str) -> Path:
    """Where a stopped container's file lives: the overlay upper layer if it holds it, else the base."""
    relative = Path(inner_path).relative_to("/")
    upper = delta / relative
    return upper if upper.exists() else base_rootfs / relative


def config_header(comment: str, hostname: str, base_rootfs: Path, delta: Path) -> list[str]:
    """The container config every lab machine shares, before its NICs."""
    return [
        f"# {comment}",
        f"lxc.include = {COMMON_CONFIG}",
        "lxc.tty.dir =",
        "lxc.arch = amd64",
        f"lxc.rootfs.path = overlay:{base_rootfs}:{delta}",
        f"lxc.uts.name = {hostname}",
        # root inside is an unprivileged uid on the host (HYP-1); the base image is shifted to match
        *idmap.idmap_config(),
        # this host's kernel has no AppArmor (HYP-1 records it); seccomp comes from common.conf
        "lxc.apparmor.profile = unconfined",
        "lxc.tty.max = 2",
        "lxc.pty.max = 256",
        "lxc.start.auto = 0",
        "lxc.sysctl.net.ipv4.ip_forward = 0",
        "lxc.sysctl.net.ipv6.conf.all.disable_ipv6 = 1",
        # every refused connection gets its ICMP answer: probes tell a firewall reject from a drop
        "lxc.sysctl.net.ipv4.icmp_ratelimit = 0",
    ]


def nic_config(
    index: int,
    link: str,
    name: str,
    hwaddr: str,
    address: str | None,
    gateway: str | None = None,
    pair: str | None = None,
) -> list[str]:
    """One veth on a host bridge; address is "A/P" (None leaves the interface up without one)."""
    lines = [f"lxc.net.{index}.type = veth", f"lxc.net.{index}.link = {link}", f"lxc.net.{index}.name = {name}"]
    if pair is not None:
        lines.append(f"lxc.net.{index}.veth.pair = {pair}")
    lines += [f"lxc.net.{index}.hwaddr = {hwaddr}", f"lxc.net.{index}.flags = up"]
    if address is not None:
        lines.append(f"lxc.net.{index}.ipv4.address = {address}")
    if gateway is not None:
        lines.append(f"lxc.net.{index}.ipv4.gateway = {gateway}")
    return lines


def hostname_files(hostname: str) -> list[SeedFile]:
    return [
        SeedFile("/etc/hostname", f"{hostname}\n".encode()),
        SeedFile("/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n".encode()),
    ]


def identity_files(host_key: HostKey) -> list[SeedFile]:
    """A fresh machine-id and SSH host key: no two clones of the base share an identity."""
    return [
        SeedFile("/etc/machine-id", f"{uuid.uuid4().hex}\n".encode(), 0o444),
        SeedFile("/etc/ssh/ssh_host_ed25519_key", host_key.private, 0o600),
        SeedFile("/etc/ssh/ssh_host_ed25519_key.pub", f"{host_key.public}\n".encode()),
    ]


def authorized_keys_files(home: str, uid: int, gid: int, keys: str) -> list[SeedFile]:
    return [
        SeedFile(f"{home}/.ssh", b"", 0o700, uid, gid, kind="dir"),
        SeedFile(f"{home}/.ssh/authorized_keys", keys.encode(), 0o600, uid, gid),
    ]


def raise_host_limits(say: Callable[[str], object]) -> None:
    for path, wanted in HOST_LIMITS.items():
        current = int(Path(path).read_text())
        if current < wanted:
            say(f"raising {path.removeprefix('/proc/sys/').replace('/', '.')} from {current} to {wanted}")
            Path(path).write_text(str(wanted))


def write_config(directory: Path, config: str) -> None:
    tmp = directory / ".config.tmp"
    tmp.write_text(config)
    os.replace(tmp, directory / "config")


def start(name: str) -> None:
    run(["lxc-start", "-n", name, "-d"], timeout=60)


def stop(name: str, kill: bool = False) -> None:
    run(["lxc-stop", "-n", name, *(["-k"] if kill else ["-t", "20"])], check=False, timeout=60)


def remove(lxcpath: Path, name: str, running: bool) -> None:
    if running:
        stop(name, kill=True)
    shutil.rmtree(lxcpath / name, ignore_errors=True)


def user_ids(base_rootfs: Path, user: str) -> tuple[int, int]:
    for line in (base_rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(user)


def init_pid(name: str) -> int | None:
    """The host's pid of a running container's init, from LXC's monitor (not from anything inside)."""
    pid = run(["lxc-info", "-n", name, "-p", "-H"], check=False).stdout.strip()
    return int(pid) if pid.isdigit() else None


def open_root(name: str) -> int | None:
    """A directory descriptor of a running container's root (its init's root, in its mount namespace); None
    when it does not run. The pid is read again after the open, so a descriptor of another process is never
    returned."""
    pid = init_pid(name)
    if pid is None:
        return None
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    if init_pid(name) != pid:
        os.close(fd)
        return None
    return fd


def isolation(lxcpath: Path, name: str) -> tuple[list[str], list[str]]:
    """Facts and problems of a container's confinement, read on the host: its config's mapping, and what its
    running init holds (the kernel's own view: uid_map, gid_map, seccomp, AppArmor)."""
    facts: list[str] = []
    problems: list[str] = []
    config = lxcpath / name / "config"
    mapping = [line.split("=", 1)[1].strip() for line in _lines(config) if line.startswith("lxc.idmap")]
    if mapping:
        facts.append(f"config {config}: lxc.idmap {'; '.join(mapping)}")
    else:
        problems.append(f"config {config} has no lxc.idmap: a privileged container")
    pid = init_pid(name)
    if pid is None:
        problems.append(f"container {name} is not running: its confinement cannot be read")
        return facts, problems
    proc = Path("/proc") / str(pid)
    for table in ("uid_map", "gid_map"):
        text = (proc / table).read_text()
        shown = " / ".join(" ".join(line.split()) for line in text.splitlines())
        if idmap.is_identity_map(text):
            problems.append(f"init (pid {pid}) {table} {shown}: root inside is the host's root")
        else:
            facts.append(f"init (pid {pid}) {table}: {shown}")
    status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
    seccomp = status.get("Seccomp", "").strip()
    if seccomp == "2":
        facts.append(f"init (pid {pid}) runs under a seccomp filter (mode 2)")
    else:
        problems.append(f"init (pid {pid}) has no seccomp filter (Seccomp: {seccomp or 'unknown'})")
    facts.append(_apparmor(proc))
    return facts, problems


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines()]
    except OSError:
        return []


def _apparmor(proc: Path) -> str:
    enabled = Path("/sys/module/apparmor/parameters/enabled")
    if not enabled.is_file() or enabled.read_text().strip() != "Y":
        return "AppArmor: this host's kernel has none (the user-id mapping and seccomp confine the container)"
    for attr in (proc / "attr/apparmor/current", proc / "attr/current"):
        if attr.is_file():
            return f"AppArmor profile: {attr.read_text().strip()}"
    return "AppArmor: enabled, the container's profile is unreadable"
