"""The Debian base images hosts are cloned from, built once per recipe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Say = Callable[[str], None]


def check_packages(extra_packages: list[str]) -> None:
    """--package names, refused before any image is looked at or built."""
    from provisioner.backends.debian_rootfs import check_package_names

    check_package_names(extra_packages)


def build_lxc_base(say: Say, extra_packages: list[str]) -> Path:
    from provisioner.backends.lxc import base_image

    check_packages(extra_packages)
    return base_image.ensure_base(base_image.lxc_path(), say=say, extra_packages=extra_packages)


def build_libvirt_guest(say: Say, extra_packages: list[str]) -> Path:
    from provisioner.backends.libvirt import guest_image

    check_packages(extra_packages)
    return guest_image.ensure_built(say=say, extra_packages=extra_packages).directory


# What a Proxmox template needs besides the roles' packages: cloud-init (user, key, addresses) and the guest agent
# (the backend reads the host key through it before the first SSH connection).
PROXMOX_TEMPLATE_EXTRAS = ("cloud-init", "qemu-guest-agent")


def proxmox_template_packages() -> list[str]:
    """The Debian packages a Proxmox template must carry: the roles' (the same the lab images bake in) and the
    two the Proxmox path relies on; the cluster's template is the sysadmin's to build (docs/proxmox.md)."""
    from provisioner.backends.debian_rootfs import PACKAGES

    return sorted({*PACKAGES, *PROXMOX_TEMPLATE_EXTRAS})
