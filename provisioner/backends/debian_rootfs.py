"""A Debian root file system from the mirror alone: debootstrap, then apt inside it, then proof it holds the recipe.

Both base images are made here: the LXC lab's rootfs and the libvirt guests' disk. No LXC template is used (with
`--no-install-recommends` it is not even on the machine, and it reports success when apt failed inside it).
The mirror's three suites are written by hand, so apt inside sees bookworm, -updates and -security.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from provisioner.controller.shell import run
from provisioner.errors import BackendError, InputError, shown

RELEASE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DEBOOTSTRAP_CACHE = Path("/var/cache/provisioner/debootstrap")
APT_CACHE = Path("/var/cache/provisioner/apt-archives")
PREFLIGHT = Path("/var/cache/provisioner/apt-preflight")  # the host's apt, pointed at the image's suites

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
    "systemd-journal-remote",  # systemd-journal-upload: production ships its journal off the host (LOG-1)
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

# Runs in a private mount namespace: /proc, /sys and /dev appear in the chroot for the package scripts and
# vanish with the process, whatever happens. policy-rc.d keeps services from starting inside the chroot.
# `--error-on=any` makes a suite apt cannot read an error, not a warning apt carries on after.
INSTALL_SCRIPT = """set -e
R="$1"; CACHE="$2"; shift 2
mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
mount --bind /dev "$R/dev"
mount --bind "$CACHE" "$R/var/cache/apt/archives"
printf '#!/bin/sh\\nexit 101\\n' > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$R/etc/resolv.conf"
trap 'rm -f "$R/usr/sbin/policy-rc.d" "$R/etc/resolv.conf"' EXIT
chroot "$R" apt-get -q update --error-on=any
DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -q -y --no-install-recommends install "$@"
chroot "$R" apt-get clean
"""
APT_ERROR = re.compile(r"^E: (?:Unable to locate package |Package ')([^\s']+)", re.MULTILINE)


class RecipeError(BackendError):
    """The mirror could not give the image what its recipe asks for."""


# Debian policy 5.6.1: lower-case letters, digits, '+', '-' and '.'; at least two characters, the first alphanumeric
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def check_package_names(names: Sequence[str]) -> None:
    """Extra packages are Debian package names, refused before anything is built (apt would read '-o...' as an
    option)."""
    bad = [name for name in names if not PACKAGE_NAME.fullmatch(name)]
    if bad:
        listed = ", ".join(shown(name) for name in bad)
        raise InputError(
            f"--package {listed}: not a Debian package name; allowed: lower-case letters, digits, '+', '-' and '.', "
            "at least two characters, starting with a letter or digit (such as htop or libpq5)"
        )


def sources_list(release: str = RELEASE) -> str:
    return (
        "# written by provisioner: the release, its point updates and its security updates\n"
        f"deb {MIRROR} {release} main\n"
        f"deb {MIRROR} {release}-updates main\n"
        f"deb {SECURITY_MIRROR} {release}-security main\n"
    )


def build(
    rootfs: Path,
    packages: Sequence[str],
    say: Callable[[str], object] = print,
    before_install: Callable[[Path], None] | None = None,
) -> None:
    """debootstrap a minimal system into rootfs (which must not exist), then install packages with apt.

    before_install(rootfs) runs between the two (configuration the packages' scripts should see).
    Raises RecipeError naming the packages that are not installed afterwards, with apt's own words.
    """
    say(f"checking that the mirror has all {len(packages)} packages of the recipe")
    check_recipe(packages)
    DEBOOTSTRAP_CACHE.mkdir(parents=True, exist_ok=True)
    say(f"debootstrap {RELEASE} from {MIRROR}")
    run(["debootstrap", "--variant=minbase", f"--cache-dir={DEBOOTSTRAP_CACHE}", RELEASE, str(rootfs), MIRROR],
        timeout=3600)  # fmt: skip
    (rootfs / "etc/apt/sources.list").write_text(sources_list())
    if before_install is not None:
        before_install(rootfs)
    say(f"apt-get install {len(packages)} packages inside the image")
    install(rootfs, packages)


def check_recipe(packages: Sequence[str]) -> None:
    """Before anything is built: the host's apt, with the image's sources and an empty dpkg status, simulates the
    install. A package the mirror lacks fails here in seconds, named, with apt's words."""
    (PREFLIGHT / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (PREFLIGHT / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (PREFLIGHT / "sources.list").write_text(sources_list())
    status = PREFLIGHT / "empty-status"
    status.write_text("")
    options = [
        "-o", f"Dir::Etc::SourceList={PREFLIGHT / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={PREFLIGHT / 'lists'}", "-o", f"Dir::Cache={PREFLIGHT}",
        "-o", f"Dir::Cache::Archives={PREFLIGHT / 'archives'}", "-o", f"Dir::State::status={status}",
        "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip
    update = run(["apt-get", "-q", *options, "update", "--error-on=any"], check=False, timeout=600)
    if update.returncode != 0:
        raise RecipeError(f"apt cannot read the image's suites from {MIRROR}: {_apt_words(update)}")
    result = run(["apt-get", "-q", *options, "install", "--simulate", "--no-install-recommends", *packages],
                 check=False, timeout=600)  # fmt: skip
    if result.returncode != 0:
        _raise_for(result, packages, [], "the mirror cannot give")


def _apt_words(result: subprocess.CompletedProcess[str]) -> str:
    said = [line for line in (result.stderr + result.stdout).splitlines() if line.startswith(("E:", "W:"))]
    return " / ".join(said[-4:]) or f"apt-get exited {result.returncode}"


def _raise_for(
    result: subprocess.CompletedProcess[str], packages: Sequence[str], missing: list[str], lack: str
) -> None:
    words = _apt_words(result)
    culprits = sorted(set(APT_ERROR.findall(result.stderr + result.stdout)) & set(packages)) or missing
    if not culprits:
        raise RecipeError(f"apt failed for the image: {words}")
    named = ", ".join(culprits)
    raise RecipeError(f"the image recipe asks for packages {lack}: {named} (apt: {words})")


def install(rootfs: Path, packages: Sequence[str]) -> None:
    APT_CACHE.mkdir(parents=True, exist_ok=True)
    (APT_CACHE / "partial").mkdir(exist_ok=True)
    result = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", INSTALL_SCRIPT, "install",
                  str(rootfs), str(APT_CACHE), *packages], check=False, timeout=3600)  # fmt: skip
    missing = not_installed(rootfs, packages)
    if result.returncode != 0 or missing:
        _raise_for(result, packages, missing, "that are not installed")


def not_installed(rootfs: Path, packages: Sequence[str]) -> list[str]:
    """The packages dpkg inside rootfs does not know as installed."""
    if not (rootfs / "var/lib/dpkg/status").is_file():
        return list(packages)
    result = run(["chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *packages],
                 check=False, timeout=120)  # fmt: skip
    installed = {line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def chroot(rootfs: Path, *cmd: str, timeout: float = 600) -> None:
    run(["chroot", str(rootfs), *cmd], timeout=timeout)


def forget_identity(rootfs: Path) -> None:
    """Every clone gets its own identity: no shared SSH host keys, no shared machine-id."""
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()


def remove(directory: Path) -> None:
    """Remove a half-built image; mounts cannot be left behind (they lived in a private namespace)."""
    shutil.rmtree(directory, ignore_errors=True)
