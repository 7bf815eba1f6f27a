"""Checks of the site's access networks (where people's workstations are) that a schema alone cannot express.

- A name of its own: not an environment's, not 'mgmt' or another reserved name (design.py), not twice.
- A network of its own: at least a /29, inside the private ranges (design.py), overlapping neither management,
  nor a segment, nor another access network; the gateway's address usable and not the probe's.
- `reaches` names known environments, each once, and a production environment only when the network is declared
  `admins_only` (developers and testers never sit on a network that reaches production).
- Hypervisor backends put each access network on a VLAN of its own (and a VNet of its own on Proxmox).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from provisioner.site.model import Site
from provisioner.site.policy import probe_address
from provisioner.site.yamlsource import KeyPath, format_path

Problem = tuple[KeyPath, str]


def check_access_networks(site: Site) -> Iterator[Problem]:
    yield from _names(site)
    yield from _addresses(site)
    yield from _reaches(site)
    yield from _vlans(site)


def _allowed(names: list[str] | set[str]) -> str:
    return ", ".join(sorted(names)) or "(none declared)"


def _names(site: Site) -> Iterator[Problem]:
    envs = {e.name for e in site.environments}
    seen: dict[str, int] = {}
    for index, network in enumerate(site.access_networks):
        path: KeyPath = ("access_networks", index, "name")
        if network.name in seen:
            yield (
                path,
                f"'{network.name}' is declared twice (first at access_networks[{seen[network.name]}]); "
                "allowed: a name used once",
            )
        seen.setdefault(network.name, index)
        if network.name in envs:
            yield (
                path,
                f"'{network.name}' is already the name of an environment (the gateway's zones, counters and legs "
                f"are named after both); allowed: a name that is not {_allowed(envs | {'mgmt'})}",
            )


def _usable(cidr: ipaddress.IPv4Network) -> str:
    return f"an address of {cidr} other than {cidr.network_address} and {cidr.broadcast_address}"


def _addresses(site: Site) -> Iterator[Problem]:
    mgmt = site.management
    networks: list[tuple[KeyPath, str, ipaddress.IPv4Network]] = [(("management", "cidr"), "management", mgmt.cidr)]
    networks += [
        (("environments", i, "segment", "cidr"), e.name, e.segment.cidr) for i, e in enumerate(site.environments)
    ]
    for index, network in enumerate(site.access_networks):
        path: KeyPath = ("access_networks", index)
        cidr = network.cidr
        if cidr.prefixlen > 29:
            yield (
                (*path, "cidr"),
                f"{cidr} is too small for an access network (the gateway, verify's probe and the workstations "
                "need addresses); allowed: a prefix of /29 or shorter",
            )
        for other_path, other_name, other in networks:
            if cidr.overlaps(other):
                yield (
                    (*path, "cidr"),
                    f"{cidr} of access network '{network.name}' overlaps {other} of '{other_name}' "
                    f"({format_path(other_path)}); allowed: a subnet of its own that overlaps no other",
                )
        networks.append(((*path, "cidr"), network.name, cidr))
        if cidr.prefixlen > 29:
            continue
        gateway = network.gateway_address
        where = (*path, "gateway")
        if gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
            yield (where, f"{gateway} is not a usable address of {cidr}; allowed: {_usable(cidr)}")
        elif gateway == probe_address(network):
            yield (
                where,
                f"{gateway} is the network's last usable address, reserved for verify's probe; "
                f"allowed: {_usable(cidr)} but {gateway}",
            )


def _reaches(site: Site) -> Iterator[Problem]:
    envs = {e.name: e for e in site.environments}
    for index, network in enumerate(site.access_networks):
        seen: set[str] = set()
        for reach_index, name in enumerate(network.reaches):
            path: KeyPath = ("access_networks", index, "reaches", reach_index)
            env = envs.get(name)
            if env is None:
                yield (path, f"unknown environment '{name}'; allowed: {_allowed(set(envs))}")
                continue
            if name in seen:
                yield (path, f"'{name}' is listed twice; allowed: each environment once")
            seen.add(name)
            if env.tier == "production" and not network.admins_only:
                others = [e.name for e in site.environments if e.tier != "production"]
                yield (
                    path,
                    f"access network '{network.name}' would reach production environment '{name}' on SSH, but "
                    "developers and testers may sit on it: only a network declared `admins_only: true` reaches "
                    f"production; allowed here: {_allowed(others)}, or admins_only: true on this network",
                )


def _vlans(site: Site) -> Iterator[Problem]:
    backend = site.backend.type
    mgmt = site.management
    vlans: dict[int, str] = {e.segment.vlan: e.name for e in site.environments}
    if mgmt.vlan is not None:
        vlans[mgmt.vlan] = "management"
    vnets: dict[str, str] = {e.segment.vnet: e.name for e in site.environments if e.segment.vnet}
    if mgmt.vnet:
        vnets[mgmt.vnet] = "management"
    for index, network in enumerate(site.access_networks):
        path: KeyPath = ("access_networks", index)
        if network.vlan is None:
            if backend != "lxc":
                yield (
                    (*path, "vlan"),
                    f"the {backend} backend puts each access network on a VLAN of its own; allowed: a VLAN id 1-4094",
                )
        elif network.vlan in vlans:
            yield (
                (*path, "vlan"),
                f"VLAN {network.vlan} is already used by '{vlans[network.vlan]}'; allowed: a VLAN id of its own",
            )
        else:
            vlans[network.vlan] = network.name
        if network.vnet and network.vnet in vnets:
            yield (
                (*path, "vnet"),
                f"VNet '{network.vnet}' is already used by '{vnets[network.vnet]}'; allowed: a VNet id of its own",
            )
        elif network.vnet:
            vnets[network.vnet] = network.name
