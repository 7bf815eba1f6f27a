"""Fixed vocabularies of the site file: tiers, roles, colours, data rules, sizes, templates."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import yaml

from provisioner.paths import control_catalogue

TIERS = ("development", "test", "production")
DATA_RULES = ("dummy", "anonymised", "live")
PEOPLE_ROLES = ("developer", "tester", "admin", "approver")
ACCESS_LEVELS = ("none", "login", "sudo")
SIZES = ("small", "medium", "large")
TEMPLATES = ("debian12",)
BACKENDS = ("lxc", "proxmox", "libvirt")
# What each size means on a hypervisor: (virtual CPUs, memory in MiB).
SIZE_RESOURCES: dict[str, tuple[int, int]] = {"small": (1, 1024), "medium": (2, 2048), "large": (4, 4096)}


@dataclass(frozen=True)
class Colour:
    ansi: int  # SGR foreground code for terminals
    hex: str  # for web banners and reports


COLOURS: dict[str, Colour] = {
    "green": Colour(32, "#2e7d32"),
    "yellow": Colour(33, "#f9a825"),
    "red": Colour(31, "#c62828"),
    "blue": Colour(34, "#1565c0"),
    "magenta": Colour(35, "#ad1457"),
    "cyan": Colour(36, "#00838f"),
}


@dataclass(frozen=True)
class HostRole:
    description: str
    ports: tuple[int, ...]  # service ports this role serves
    # accounts this role's software creates with a login shell (Debian's postgres has /bin/bash): the access
    # checks accept them on the role's hosts
    service_accounts: tuple[str, ...] = ()


HOST_ROLES: dict[str, HostRole] = {
    "app": HostRole("web application behind nginx", (80,)),
    "db": HostRole("PostgreSQL database", (5432,), service_accounts=("postgres",)),
    "worker": HostRole("background jobs, serves nothing", ()),
}

# The A.8.31 access matrix: what each people role gets in each tier, before waivers.
DEFAULT_ACCESS: dict[str, dict[str, str]] = {
    "admin": {"development": "sudo", "test": "sudo", "production": "sudo"},
    "developer": {"development": "sudo", "test": "login", "production": "none"},
    "tester": {"development": "none", "test": "login", "production": "none"},
    "approver": {"development": "none", "test": "none", "production": "none"},
}

LEVEL_ORDER = {level: index for index, level in enumerate(ACCESS_LEVELS)}


def known(what: str, allowed: Iterable[str]) -> Callable[[str], str]:
    """A check that a value belongs to one of these vocabularies; the message names what is allowed."""
    words = tuple(allowed)

    def check(value: str) -> str:
        if value not in words:
            raise ValueError(f"{what} '{value}' is not known; allowed: {', '.join(words)}")
        return value

    return check


@cache
def control_ids() -> tuple[str, ...]:
    """The IDs of the control catalogue, in its order: what a waiver may name."""
    rows = yaml.safe_load(control_catalogue().read_text(encoding="utf-8"))
    return tuple(str(row["id"]) for row in rows)


# Account names a person or the deploy identity may not take: Debian's system users and groups, the service
# accounts the roles create, the automation user, and the groups that carry access (they share the namespace).
RESERVED_ACCOUNTS = frozenset(
    [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "nogroup",
        "_apt",
        "messagebus",
        "sshd",
        "postgres",
        "nginx",
        "provision",
        "ansible",
        "adm",
        "tty",
        "disk",
        "kmem",
        "dialout",
        "cdrom",
        "floppy",
        "audio",
        "dip",
        "operator",
        "video",
        "plugdev",
        "staff",
        "users",
        "sudo",
        "wheel",
        "shadow",
        "utmp",
        "src",
        "voice",
        "tape",
        "fax",
        "netdev",
        "input",
        "kvm",
        "render",
        "lxd",
        "libvirt",
        "libvirt-qemu",
        "libvirt-dnsmasq",
        "tcpdump",
        "_chrony",
        "ntp",
        "admin",
        "administrator",
        "app_rw",
        "provisioner_reader",
        "app_ro",
    ]
)
RESERVED_ACCOUNT_PREFIXES = ("systemd-", "pv-", "_")
# Environment names that are already segments, Ansible groups or names of the kit's own parts.
RESERVED_ENVIRONMENTS = frozenset(
    {"mgmt", "manage", "admin", "all", "ungrouped", "gateway", "gw", "ctl", "lo", "local"}
)
RESERVED_HOSTS = frozenset({"gateway", "controller", "localhost", "all", "ungrouped"})
