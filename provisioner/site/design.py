"""Design holes a schema lets through: names that collide with the kit's own parts, address ranges that are
not private networks, secrets written into the site file, and text that would reach a terminal or a system file
as something other than text."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from provisioner.site.model import LibvirtSettings, ProxmoxSettings, Site
from provisioner.site.vocabulary import RESERVED_ENVIRONMENTS, RESERVED_HOSTS
from provisioner.site.yamlsource import KeyPath

Problem = tuple[KeyPath, str]

# RFC 1918: the only ranges a site's networks may use. Python's is_private also says yes to loopback,
# link-local, documentation and benchmark ranges, none of which is a network a business builds.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
PRIVATE_HELP = "a private range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SECRET_WORDS = re.compile(r"pass|secret|token|key|auth|cred", re.IGNORECASE)


def check_design(site: Site) -> Iterator[Problem]:
    yield from _names(site)
    yield from _ranges(site)
    yield from _backend(site)
    yield from _text(site)


def _names(site: Site) -> Iterator[Problem]:
    sections = (
        ("environments", [e.name for e in site.environments], RESERVED_ENVIRONMENTS,
         "names the management network, an Ansible group or a part of the kit"),
        ("hosts", [h.name for h in site.hosts], RESERVED_HOSTS, "is reserved for the kit's own machines"),
        ("access_networks", [a.name for a in site.access_networks], RESERVED_ENVIRONMENTS,
         "names the management network, an Ansible group or a part of the kit"),
    )  # fmt: skip
    for section, names, reserved, why in sections:
        for index, name in enumerate(names):
            if name in reserved:
                yield (
                    (section, index, "name"),
                    f"'{name}' {why}; allowed: a name of its own (not {', '.join(sorted(reserved))})",
                )


def _private(network: ipaddress.IPv4Network) -> bool:
    return any(network.subnet_of(r) for r in PRIVATE_RANGES)


def _ranges(site: Site) -> Iterator[Problem]:
    networks: list[tuple[KeyPath, ipaddress.IPv4Network]] = [(("management", "cidr"), site.management.cidr)]
    networks += [(("environments", i, "segment", "cidr"), e.segment.cidr) for i, e in enumerate(site.environments)]
    networks += [(("access_networks", i, "cidr"), a.cidr) for i, a in enumerate(site.access_networks)]
    for path, network in networks:
        if not _private(network):
            yield (path, f"{network} is not a private network range; allowed: {PRIVATE_HELP}")


def derived_vnet(site: Site, segment: str) -> str:
    """A Proxmox VNet id for a segment (MGMT_SEGMENT, an environment or an access network) that does not name one:
    its first four letters or digits and 4 hex of the site (VNet ids are cluster-wide, 2-8 characters)."""
    stem = re.sub(r"[^a-z0-9]", "", segment)[:4]
    return stem + hashlib.sha1(site.site.encode()).hexdigest()[:4]


MGMT_SEGMENT = "mgmt"  # the management network's segment key (planning.desired.MGMT)


def vnet_of(site: Site, segment: str) -> str:
    """The VNet id of a segment on Proxmox: the one the site file names, or the derived one."""
    if segment == MGMT_SEGMENT:
        explicit = site.management.vnet
    elif segment in {a.name for a in site.access_networks}:
        explicit = site.access_network(segment).vnet
    else:
        explicit = site.environment(segment).segment.vnet
    return explicit or derived_vnet(site, segment)


def _vnets(site: Site) -> Iterator[Problem]:
    """Proxmox: every segment on a VNet of its own, derived ids included ('test' and 'testers' both derive
    'test' + the site's hex): two segments on one VNet would be one network."""
    segments: list[tuple[KeyPath, str, bool]] = [(("management", "vnet"), MGMT_SEGMENT, bool(site.management.vnet))]
    segments += [(("environments", i, "segment", "vnet"), e.name, bool(e.segment.vnet))
                 for i, e in enumerate(site.environments)]  # fmt: skip
    segments += [(("access_networks", i, "vnet"), a.name, bool(a.vnet)) for i, a in enumerate(site.access_networks)]
    taken: dict[str, tuple[str, bool]] = {}
    for path, name, explicit in segments:
        vnet = vnet_of(site, name)
        first = taken.get(vnet)
        if first is not None and not (explicit and first[1]):  # two named ones are refused where they are named
            yield (
                path,
                f"segment '{name}' would use VNet '{vnet}'"
                + ("" if explicit else " (derived from its name and the site)")
                + f", already the VNet of '{first[0]}'; allowed: a VNet id of its own (set vnet here)",
            )
        taken.setdefault(vnet, (name, explicit))


def _backend(site: Site) -> Iterator[Problem]:
    backend = site.backend
    if isinstance(backend, LibvirtSettings):
        yield from _uri(backend.uri)
        for key, value in (("pool_path", backend.pool_path), ("image", backend.image)):
            if value is not None and (not value.startswith("/") or ".." in value.split("/")):
                yield (("backend", key), f"'{value}' is not allowed; allowed: an absolute path without '..'")
    if isinstance(backend, ProxmoxSettings):
        yield from _vnets(site)
        if "shutdown_timeout" in backend.model_fields_set and backend.shutdown_timeout >= backend.task_timeout:
            yield (
                ("backend", "shutdown_timeout"),
                f"{backend.shutdown_timeout} s is not shorter than task_timeout ({backend.task_timeout} s), so a "
                f"shutdown task could not end in time; allowed: 0 to {backend.task_timeout - 1}",
            )
        yield from _endpoints(backend)
        yield from _placement(site, backend)


def _placement(site: Site, backend: ProxmoxSettings) -> Iterator[Problem]:
    """`nodes` named once each; `placement` pins hosts of the site file to nodes of `nodes`; a size's storage only
    where full clones are made."""
    seen: set[str] = set()
    for index, node in enumerate(backend.nodes or []):
        if node in seen:
            yield (("backend", "nodes", index), f"node '{node}' is listed twice; allowed: each node once")
        seen.add(node)
    hosts = [h.name for h in site.hosts]
    nodes = backend.vm_nodes
    for name, node in backend.placement.items():
        if name not in hosts:
            yield (
                ("backend", "placement", name),
                f"'{name}' is not a host of the site file; allowed: {', '.join(hosts) or 'no hosts are declared'}",
            )
        if node not in nodes:
            where = "backend.nodes" if backend.nodes else "backend.node (no backend.nodes is set)"
            yield (
                ("backend", "placement", name),
                f"node '{node}' is not one of {where}; allowed: {', '.join(nodes)}",
            )
    for size, settings in backend.sizes.items():
        if settings.storage is not None and not backend.full_clone:
            yield (
                ("backend", "sizes", size, "storage"),
                f"a storage for size '{size}' needs full clones (a linked clone stays on the template's storage); "
                "allowed: set backend.full_clone: true, or leave the storage out",
            )


def _endpoints(backend: ProxmoxSettings) -> Iterator[Problem]:
    """Each API endpoint valid and named once."""
    listed = not isinstance(backend.host, str)
    seen: dict[tuple[str, str], int] = {}
    for index, endpoint in enumerate(backend.endpoints):
        path: KeyPath = ("backend", "host", index) if listed else ("backend", "host")
        name, _, port = endpoint.partition(":")
        if port and not 1 <= int(port) <= 65535:
            yield (path, f"port {port} is out of range; allowed: host or host:port, port 1-65535")
        key = (name.lower(), port or "8006")
        if key in seen:
            yield (
                path,
                f"'{endpoint}' is already endpoint {seen[key] + 1} of the list; allowed: each API endpoint once",
            )
        seen.setdefault(key, index)


def _uri(uri: str) -> Iterator[Problem]:
    """A libvirt URI names where to connect, never how to log in: credentials go to the SSH agent or SASL files."""
    allowed = "a libvirt URI such as qemu:///system or qemu+ssh://user@host/system, with no password or secret"
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        yield (("backend", "uri"), f"not a URI; allowed: {allowed}")
        return
    if parts.password is not None:
        yield (("backend", "uri"), f"the URI holds a password (hidden here); allowed: {allowed}")
    for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_WORDS.search(name) and name not in ("keyfile", "known_hosts"):
            yield (("backend", "uri"), f"the URI parameter '{name}' carries a secret (hidden here); allowed: {allowed}")
    if not re.fullmatch(r"[a-z0-9+]+", parts.scheme or ""):
        yield (("backend", "uri"), f"'{parts.scheme}' is not a URI scheme; allowed: {allowed}")


def _text(site: Site) -> Iterator[Problem]:
    """Free text reaches login banners, /etc/passwd and reports: no control characters (terminal escapes,
    line breaks, bidirectional overrides), and a person's full name holds no passwd field separator."""
    for path, value in _free_text(site.model_dump(by_alias=True), ()):
        found = _CONTROL.search(value)
        if found:
            yield (
                path,
                f"the text holds the control character U+{ord(found.group()):04X}; allowed: printable text on one line",
            )
    for index, person in enumerate(site.people):
        if ":" in person.full_name:
            yield (
                ("people", index, "full_name"),
                "':' would split the account's passwd entry; allowed: a name without ':'",
            )


_FREE_TEXT_KEYS = {"description", "full_name", "justification", "reason", "compensating"}


def _free_text(data: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _FREE_TEXT_KEYS and isinstance(value, str):
                yield (*path, key), value
            elif key in _FREE_TEXT_KEYS and isinstance(value, list):
                yield from (((*path, key, i), v) for i, v in enumerate(value) if isinstance(v, str))
            else:
                yield from _free_text(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _free_text(item, (*path, index))
