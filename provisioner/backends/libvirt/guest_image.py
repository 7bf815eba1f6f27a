"""The Debian base disk every libvirt guest is a linked clone of: debootstrap -> ext4 -> qcow2, plus kernel and initrd.

Built once on the controller from the Debian mirror only (guests have no internet, so every package the roles
need is baked in, the same list as the LXC lab's base), cached under /var/lib/provisioner/images/cache/<name>/.
Guests boot the kernel directly (no bootloader): the root file system fills the whole disk, /dev/vda.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from provisioner.backends import debian_rootfs
from provisioner.backends.debian_rootfs import DISABLED_SERVICES, MIRROR, PACKAGES, RELEASE
from provisioner.controller.shell import run
from provisioner.errors import BackendError

CACHE_ROOT = Path("/var/lib/provisioner/image-cache")
GUEST_PACKAGES = (
    "systemd-sysv",
    "udev",
    "kmod",
    "linux-image-amd64",
    "initramfs-tools",
    "cloud-init",
    "ifupdown",
    "netbase",
    "e2fsprogs",
)
# Timers and services that would spend the guests' (emulated) CPU on nothing the lab needs.
QUIET_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer", "fstrim.timer")
# Modules udev would load for emulated hardware the guests never use; each costs boot time under TCG.
UNUSED_MODULES = ("kvm", "kvm_amd", "kvm_intel", "floppy", "pcspkr", "joydev", "psmouse", "serio_raw", "ata_piix",
                  "ata_generic", "pata_acpi", "i2c_piix4", "intel_agp", "powernow_k8", "acpi_cpufreq")  # fmt: skip
DISK_SIZE = "4G"
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "ext4")
RECIPE_VERSION = "2"

CLOUD_CFG = """# provisioner: NoCloud seed only, and only the modules the lab needs (each costs seconds under TCG)
datasource_list: [NoCloud, None]
disable_root: true
ssh_pwauth: false
ssh_deletekeys: true
ssh_genkeytypes: []
preserve_hostname: false
manage_etc_hosts: true
cloud_init_modules: [seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts,
  users_groups, ssh]
cloud_config_modules: [runcmd]
cloud_final_modules: [scripts_user, final_message]
"""
SYSCTL = """# provisioner: every refused connection gets its ICMP answer, so probes tell a reject from a drop
net.ipv4.icmp_ratelimit = 0
net.ipv6.conf.all.disable_ipv6 = 1
net.ipv6.conf.default.disable_ipv6 = 1
"""


@dataclass(frozen=True)
class GuestImage:
    name: str
    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def marker(self) -> Path:
        return self.directory / "built.json"

    def volume(self, part: str) -> str:
        """The name of one part (disk, kernel, initrd) as a volume in the storage pool."""
        return {"disk": f"{self.name}.qcow2", "kernel": f"{self.name}.vmlinuz", "initrd": f"{self.name}.initrd"}[part]

    def built(self) -> bool:
        return self.marker.is_file() and all(p.is_file() for p in (self.disk, self.kernel, self.initrd))


def recipe_packages(extra: Sequence[str] = ()) -> list[str]:
    return sorted({*PACKAGES, *GUEST_PACKAGES, *extra})


def recipe_digest(extra_packages: Sequence[str] = ()) -> str:
    recipe = {
        "release": RELEASE,
        "packages": recipe_packages(extra_packages),
        "disabled": DISABLED_SERVICES,
        "cloud": CLOUD_CFG,
        "sysctl": SYSCTL,
        "modules": INITRAMFS_MODULES,
        "unused": UNUSED_MODULES,
        "size": DISK_SIZE,
        "v": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def current(cache_root: Path = CACHE_ROOT, extra_packages: Sequence[str] = ()) -> GuestImage:
    name = f"provisioner-guest-{RELEASE}-{recipe_digest(extra_packages)}"
    return GuestImage(name, cache_root / name)


def ensure_built(say=print, cache_root: Path = CACHE_ROOT, extra_packages: Sequence[str] = ()) -> GuestImage:
    """Build the image unless a complete one is cached; a half-built one is removed first, a failed one too.

    extra_packages: more Debian packages to bake in (a different recipe, so a different image name).
    """
    image = current(cache_root, extra_packages)
    if image.built():
        return image
    for tool in ("debootstrap", "mkfs.ext4", "qemu-img", "chroot"):
        if shutil.which(tool) is None:
            raise BackendError(f"building the libvirt guest image needs {tool}; run `make setup`")
    if image.directory.exists():
        say(f"removing the half-built guest image {image.directory}")
        shutil.rmtree(image.directory)
    say(f"building the libvirt guest image {image.name} (debootstrap from {MIRROR}, about 3-5 minutes)")
    started = time.monotonic()
    image.directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".building-", dir=image.directory.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            debian_rootfs.build(rootfs, recipe_packages(extra_packages), say=say, before_install=_small_initrd_config)
            _configure(rootfs)
            staging = Path(tmp) / "out"
            staging.mkdir()
            shutil.copyfile(_newest(rootfs / "boot", "vmlinuz-*"), staging / "vmlinuz")
            shutil.copyfile(_newest(rootfs / "boot", "initrd.img-*"), staging / "initrd.img")
            raw = Path(tmp) / "disk.raw"
            run(["mkfs.ext4", "-q", "-L", "root", "-d", str(rootfs), str(raw), DISK_SIZE], timeout=900)
            run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(staging / "disk.qcow2")],
                timeout=900)  # fmt: skip
            seconds = round(time.monotonic() - started, 1)
            (staging / "built.json").write_text(
                json.dumps({"name": image.name, "release": RELEASE, "built": time.time(), "seconds": seconds})
            )
            staging.rename(image.directory)
    except OSError as exc:
        raise BackendError(f"building the libvirt guest image {image.name} failed: {exc}") from exc
    say(f"guest image built in {seconds:.0f}s: {image.directory}")
    return image


def _newest(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if not found:
        raise BackendError(f"no {pattern} in {directory}: the kernel package did not install")
    return found[-1]


def _small_initrd_config(rootfs: Path) -> None:
    """Before the kernel is installed: its initrd holds only what mounts the virtio root disk (boots faster)."""
    conf = rootfs / "etc/initramfs-tools/conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "provisioner").write_text("MODULES=list\nCOMPRESS=gzip\n")
    modules = rootfs / "usr/share/initramfs-tools/modules.d"
    modules.mkdir(parents=True, exist_ok=True)
    (modules / "provisioner").write_text("".join(f"{m}\n" for m in INITRAMFS_MODULES))


def _configure(rootfs: Path) -> None:
    etc = rootfs / "etc"
    (etc / "fstab").write_text("LABEL=root / ext4 defaults,noatime 0 1\n")
    (etc / "hostname").write_text("debian\n")
    (etc / "network/interfaces").write_text(
        "# interfaces come from the cloud-init seed (interfaces.d/50-cloud-init)\n"
        "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"
    )
    (etc / "cloud/cloud.cfg.d/90-provisioner.cfg").write_text(CLOUD_CFG)
    (etc / "sysctl.d/60-provisioner.conf").write_text(SYSCTL)
    (etc / "modprobe.d/provisioner.conf").write_text("".join(f"blacklist {m}\n" for m in UNUSED_MODULES))
    debian_rootfs.chroot(rootfs, "systemctl", "set-default", "--quiet", "multi-user.target")
    for service in DISABLED_SERVICES:
        debian_rootfs.chroot(rootfs, "systemctl", "disable", "--quiet", f"{service}.service")
    for unit in QUIET_UNITS:
        debian_rootfs.chroot(rootfs, "systemctl", "mask", "--quiet", unit)
    # Every clone gets its own identity: host keys come from the seed, machine-id is made at first boot.
    debian_rootfs.forget_identity(rootfs)
    shutil.rmtree(rootfs / "var/lib/cloud", ignore_errors=True)
    for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()
