"""Names of a site's interfaces on the host where its segments live (the LXC lab, libvirt on this machine)."""

from __future__ import annotations

import hashlib


def short_hash(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def site_tag(site: str) -> str:
    """Prefix of every host interface of the site (bridges, ports, veths, taps): 'pv' + 4 hex."""
    return "pv" + short_hash(site, 4)


def machine_port(site: str, machine: str, index: int) -> str:
    """The host side of a machine's interface `index` (a veth or a tap)."""
    return f"{site_tag(site)}v{short_hash(machine, 5)}{index}"
