"""The Debian base rootfs every lab host is an overlay clone of; built once by debootstrap, never started."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from provisioner.errors import BackendError
from provisioner.shell import run
from provisioner.state import AUTOMATION_USER

RELEASE = "bookworm"
# Everything the roles need, baked in: lab hosts have no internet.
PACKAGES = (
    "openssh-server",
    "dbus",
    "python3",
    "python3-apt",
    "python3-psycopg2",
    "sudo",
    "nftables",
    "postgresql",
    "nginx",
    "auditd",
    "iproute2",
    "iputils-ping",
    "netcat-openbsd",
    "curl",
    "acl",
    "procps",
    "less",
    "ca-certificates",
)
# Services the roles enable where a host needs them; disabled in the base so idle hosts stay small.
DISABLED_SERVICES = ("postgresql", "nginx", "auditd")
RECIPE_VERSION = "1"
MARKER = "provisioner-base.json"


def recipe_digest() -> str:
    recipe = json.dumps({"release": RELEASE, "packages": PACKAGES, "disabled": DISABLED_SERVICES, "v": RECIPE_VERSION})
    return hashlib.sha256(recipe.encode()).hexdigest()[:8]


def base_name() -> str:
    return f"provisioner-base-{RELEASE}-{recipe_digest()}"


def lxc_path() -> Path:
    return Path(run(["lxc-config", "lxc.lxcpath"]).stdout.strip() or "/var/lib/lxc")


def base_rootfs(lxcpath: Path) -> Path:
    return lxcpath / base_name() / "rootfs"


def is_built(lxcpath: Path) -> bool:
    return (lxcpath / base_name() / MARKER).is_file()


def ensure_base(lxcpath: Path, say=print) -> Path:
    """Build the base image unless a complete one exists; a half-built one is removed first."""
    directory = lxcpath / base_name()
    if is_built(lxcpath):
        return directory / "rootfs"
    if directory.exists():
        say(f"removing the half-built base image {directory}")
        shutil.rmtree(directory)
    say(f"building the base image {base_name()} (debootstrap, about 1-2 minutes)")
    started = time.monotonic()
    config = directory.parent / f".{base_name()}.create.conf"
    config.write_text("lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n")
    try:
        run(
            [
                "lxc-create",
                "-n",
                base_name(),
                "-f",
                str(config),
                "-t",
                "debian",
                "--",
                "-r",
                RELEASE,
                f"--packages={','.join(PACKAGES)}",
            ],
            timeout=1800,
        )
    finally:
        config.unlink(missing_ok=True)
    rootfs = directory / "rootfs"
    _prepare_rootfs(rootfs)
    (directory / MARKER).write_text(
        json.dumps(
            {"release": RELEASE, "packages": PACKAGES, "built": time.time(), "seconds": time.monotonic() - started}
        )
    )
    return rootfs


def _chroot(rootfs: Path, *cmd: str) -> None:
    run(["chroot", str(rootfs), *cmd], timeout=120)


def _prepare_rootfs(rootfs: Path) -> None:
    # The automation account the controller logs in with; its key is added per clone.
    _chroot(
        rootfs,
        "useradd",
        "--create-home",
        "--shell",
        "/bin/bash",
        "--comment",
        "provisioner automation",
        AUTOMATION_USER,
    )
    sudoers = rootfs / "etc/sudoers.d" / AUTOMATION_USER
    sudoers.write_text(f"{AUTOMATION_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    # Every clone gets its own identity: no shared host keys, no shared machine-id.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    # Addresses come from the container config; ifupdown must not run DHCP on eth0.
    (rootfs / "etc/network/interfaces").write_text(
        "auto lo\niface lo inet loopback\n\n# addresses are set by the lab backend\niface eth0 inet manual\n"
    )
    for service in DISABLED_SERVICES:
        _chroot(rootfs, "systemctl", "disable", "--quiet", f"{service}.service")
    if not (rootfs / "usr/bin/python3").exists():
        raise BackendError(f"base image at {rootfs} has no python3; the package installation failed")
