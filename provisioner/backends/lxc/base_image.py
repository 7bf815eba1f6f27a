"""The Debian base rootfs every lab host is an overlay clone of; built once by debootstrap and apt, never started."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from provisioner.backends import debian_rootfs
from provisioner.backends.debian_rootfs import DISABLED_SERVICES, PACKAGES, RELEASE
from provisioner.backends.lxc import idmap
from provisioner.controller.shell import run
from provisioner.errors import BackendError, ProvisionError
from provisioner.workspace.site_state import AUTOMATION_USER

# What a systemd container of the lab needs besides the roles' packages (debootstrap's minbase has no init).
CONTAINER_PACKAGES = ("init", "ifupdown", "netbase")
RECIPE_VERSION = "3"  # 3: shifted for the containers' user-id mapping
MARKER = "provisioner-base.json"


def recipe_packages(extra: Sequence[str] = ()) -> list[str]:
    return sorted({*CONTAINER_PACKAGES, *PACKAGES, *extra})


def recipe_digest(extra_packages: Sequence[str] = ()) -> str:
    recipe = {"release": RELEASE, "packages": recipe_packages(extra_packages), "disabled": DISABLED_SERVICES,
              "v": RECIPE_VERSION}  # fmt: skip
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def base_name(extra_packages: Sequence[str] = ()) -> str:
    return f"provisioner-base-{RELEASE}-{recipe_digest(extra_packages)}"


def lxc_path() -> Path:
    return Path(run(["lxc-config", "lxc.lxcpath"]).stdout.strip() or "/var/lib/lxc")


def base_rootfs(lxcpath: Path) -> Path:
    return lxcpath / base_name() / "rootfs"


def is_built(lxcpath: Path) -> bool:
    return (lxcpath / base_name() / MARKER).is_file()


def ensure_base(lxcpath: Path, say=print, extra_packages: Sequence[str] = ()) -> Path:
    """Build the base image unless a complete one exists; a half-built one is removed first, and so is a failed one.

    extra_packages: more Debian packages to bake in (a different recipe, so a different image name).
    """
    packages = recipe_packages(extra_packages)
    name = base_name(extra_packages)
    directory = lxcpath / name
    if (directory / MARKER).is_file():
        return directory / "rootfs"
    if directory.exists():
        say(f"removing the half-built base image {directory}")
        debian_rootfs.remove(directory)
    say(f"building the base image {name} (debootstrap and apt, about 1-2 minutes)")
    started = time.monotonic()
    directory.mkdir(parents=True, mode=0o770)
    rootfs = directory / "rootfs"
    try:
        debian_rootfs.build(rootfs, packages, say=say)
        _prepare_rootfs(rootfs)
        say("shifting the image's owners for the containers' user-id mapping")
        idmap.shift_tree(rootfs)
        _open_to_mapped_root(directory)
    except (ProvisionError, OSError) as exc:
        debian_rootfs.remove(directory)
        if isinstance(exc, ProvisionError):
            raise
        raise BackendError(f"building the base image {name} failed: {exc}") from exc
    except BaseException:
        debian_rootfs.remove(directory)
        raise
    seconds = round(time.monotonic() - started, 1)
    (directory / MARKER).write_text(
        json.dumps({"release": RELEASE, "packages": packages, "built": time.time(), "seconds": seconds})
    )
    return rootfs


def _open_to_mapped_root(directory: Path) -> None:
    """The containers' mapped root mounts their overlays from the image: it may pass through its folder (read-only
    through the group), nobody else may."""
    os.chown(directory, 0, idmap.to_host(0))
    directory.chmod(0o750)


def _prepare_rootfs(rootfs: Path) -> None:
    # The automation account the controller logs in with; its key is added per clone.
    debian_rootfs.chroot(
        rootfs, "useradd", "--create-home", "--shell", "/bin/bash", "--comment", "provisioner automation",
        AUTOMATION_USER,
    )  # fmt: skip
    sudoers = rootfs / "etc/sudoers.d" / AUTOMATION_USER
    sudoers.write_text(f"{AUTOMATION_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    debian_rootfs.forget_identity(rootfs)
    # Addresses come from the container config; ifupdown must not run DHCP on eth0.
    (rootfs / "etc/network/interfaces").write_text(
        "auto lo\niface lo inet loopback\n\n# addresses are set by the lab backend\niface eth0 inet manual\n"
    )
    # systemd in a container: no udev (the host owns the devices), boot to multi-user.
    systemd = rootfs / "etc/systemd/system"
    for unit in ("udev.service", "systemd-udevd.service"):
        (systemd / unit).unlink(missing_ok=True)
        (systemd / unit).symlink_to("/dev/null")
    debian_rootfs.chroot(rootfs, "systemctl", "set-default", "--quiet", "multi-user.target")
    for service in DISABLED_SERVICES:
        debian_rootfs.chroot(rootfs, "systemctl", "disable", "--quiet", f"{service}.service")
