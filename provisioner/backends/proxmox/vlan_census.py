"""Who already uses a VLAN tag on the site's bridge, read from the whole cluster before anything is built.

Proxmox refuses a duplicate tag only inside one SDN zone. A second zone on the same bridge, a VM or container
tagged there by hand, a trunk, a node's own VLAN interface or a QinQ zone's service VLAN all put their frames
into the same 802.1Q VLAN on the same wire: a VNet of this site with that tag would share their broadcast
domain, and production would no longer be a network of its own. So before `plan` or `apply` touches anything,
the census reads every SDN zone and VNet (applied and pending), every node's interfaces and every guest's NICs,
and a tag the site file wants that anything but the site's own zone uses is refused, naming who uses it.

VLAN 1 is refused outright: it is the default (native) VLAN of most switches, and on a VLAN-aware bridge Proxmox
puts every guest NIC without a tag into VLAN 1 untagged.

What the census cannot see it does not guess: a node that is not online (its guests and interfaces cannot be
read), or a token that may not audit every guest and zone, is a refusal too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.backends.proxmox.client import PveClient, PveError
from provisioner.backends.proxmox.names import nic_options
from provisioner.errors import InputError, SiteError, SiteProblem
from provisioner.site.model import Site
from provisioner.site.yamlsource import KeyPath, YamlInputError, format_path, load_yaml

NATIVE_VLAN = 1
GUEST_KINDS = (("qemu", "VM"), ("lxc", "container"))
MAX_NAMED = 6  # users named per refused VLAN; the rest are counted
_NIC_KEY = re.compile(r"^net\d+$")
_PENDING = " (pending, not applied yet)"


@dataclass(frozen=True)
class WantedVlan:
    """A VLAN id the site file asks for, and where it asks."""

    vlan: int
    path: KeyPath
    segment: str  # what the segment is, for the message


@dataclass(frozen=True)
class VlanUser:
    vlans: frozenset[int]
    who: str  # "VM 105 'office-pc' net1 on node pve1"


def wanted_vlans(site: Site) -> list[WantedVlan]:
    wanted = []
    if site.management.vlan is not None:
        wanted.append(WantedVlan(site.management.vlan, ("management", "vlan"), "the management network"))
    for index, env in enumerate(site.environments):
        wanted.append(
            WantedVlan(
                env.segment.vlan, ("environments", index, "segment", "vlan"), f"{env.tier} environment '{env.name}'"
            )
        )
    for index, network in enumerate(site.access_networks):
        if network.vlan is not None:
            path: KeyPath = ("access_networks", index, "vlan")
            wanted.append(WantedVlan(network.vlan, path, f"access network '{network.name}'"))
    return wanted


# ---- reading what Proxmox answers ----------------------------------------------------------------------------------
def vlan_set(text: str) -> frozenset[int]:
    """`10;20-22` (a NIC's trunks, a bridge's vids) -> {10, 20, 21, 22}; what does not parse is left out."""
    found: set[int] = set()
    for part in re.split(r"[;,\s]+", text.strip()):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            found.update(range(int(low), int(high or low) + 1))
    return frozenset(v for v in found if 1 <= v <= 4094)


def vlan_ranges(vlans: Iterable[int]) -> str:
    """{5, 6, 7, 30} -> '5-7, 30'."""
    out: list[str] = []
    run: list[int] = []
    for vlan in sorted(set(vlans)):
        if run and vlan == run[-1] + 1:
            run.append(vlan)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [vlan]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def nic_users(config: dict[str, Any], bridge: str, guest: str, node: str) -> list[VlanUser]:
    """The VLANs a guest's NICs on `bridge` carry: the access tag and every trunk. A NIC on another bridge (a VNet,
    this site's included) is not on this bridge's VLANs."""
    users = []
    for key in sorted(k for k in config if _NIC_KEY.match(k)):
        nic = nic_options(str(config[key]))
        if nic.get("bridge") != bridge:
            continue
        tag = nic.get("tag", "")
        if tag.isdigit():
            users.append(VlanUser(frozenset({int(tag)}), f"{guest} {key} on node {node}"))
        trunks = vlan_set(nic.get("trunks", ""))
        if trunks:
            users.append(VlanUser(trunks, f"{guest} {key} (trunk {vlan_ranges(trunks)}) on node {node}"))
    return users


def _vlan_interface(entry: dict[str, Any]) -> tuple[str, int] | None:
    """(raw device, VLAN id) of a `vlan` interface: `vmbr0.30`, `vlan30` on its raw device, or a custom name with
    both options (ifupdown2)."""
    iface = str(entry.get("iface", ""))
    dotted = re.fullmatch(r"(\S+)\.(\d+)", iface)
    numbered = re.fullmatch(r"vlan(\d+)", iface)
    raw = entry.get("vlan-raw-device") or (dotted.group(1) if dotted else None)
    vid = entry.get("vlan-id") or (dotted.group(2) if dotted else numbered.group(1) if numbered else None)
    if not raw or vid is None or not str(vid).isdigit():
        return None
    return str(raw), int(vid)


def interface_users(entries: list[dict[str, Any]], bridge: str, node: str) -> list[VlanUser]:
    """A node's own users of the bridge's VLANs: VLAN interfaces on the bridge or on one of its ports (those take
    the VLAN's frames off the same wire), OVS internal ports with a tag, and ports given an access VLAN."""
    ports: set[str] = set()
    for entry in entries:
        if entry.get("iface") == bridge:
            for key in ("bridge_ports", "ovs_ports"):
                ports.update(p for p in re.split(r"[\s,;]+", str(entry.get(key) or "")) if p)
    users = []
    for entry in sorted(entries, key=lambda e: str(e.get("iface"))):
        iface = str(entry.get("iface"))
        kind = entry.get("type")
        if kind == "vlan":
            found = _vlan_interface(entry)
            if found is not None and found[0] in {bridge, *ports}:
                raw, vid = found
                on = "" if raw == bridge else f" (on {raw}, a port of {bridge})"
                users.append(VlanUser(frozenset({vid}), f"interface {iface}{on} on node {node}"))
        elif kind == "OVSIntPort" and entry.get("ovs_bridge") == bridge and str(entry.get("ovs_tag", "")).isdigit():
            users.append(VlanUser(frozenset({int(entry["ovs_tag"])}), f"OVS internal port {iface} on node {node}"))
        if iface in ports and str(entry.get("bridge-access", "")).isdigit():
            access = frozenset({int(entry["bridge-access"])})
            users.append(VlanUser(access, f"port {iface} of {bridge} (access VLAN) on node {node}"))
    return users


def sdn_views(item: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """An SDN object listed with `pending=1` as it runs and as it will run once applied: the running values are
    at the top, changes under `pending` ('deleted' for a removed key), `state` new/changed/deleted."""
    state = item.get("state")
    running = {k: v for k, v in item.items() if k not in ("pending", "state")}
    views = [] if state == "new" else [(running, "")]
    if state in ("new", "changed"):
        pending = dict(running)
        for key, value in (item.get("pending") or {}).items():
            if value == "deleted":
                pending.pop(key, None)
            else:
                pending[key] = value
        views.append((pending, _PENDING))
    return views


def sdn_users(zones: list[dict[str, Any]], vnets: list[dict[str, Any]], bridge: str, own_zone: str) -> list[VlanUser]:
    """VNets of other VLAN zones on the bridge, and the service VLAN of QinQ zones on it (a QinQ zone's VNets tag
    inside that service VLAN, so their own tags are not on the bridge). VXLAN, EVPN and simple zones carry nothing
    on the bridge's VLANs. The site's own zone is the site's."""
    users: dict[tuple[str, int], str] = {}
    vlan_zones: set[str] = set()
    for zone in zones:
        zone_id = str(zone.get("zone"))
        if zone_id == own_zone:
            continue
        for view, note in sdn_views(zone):
            if view.get("bridge") != bridge:
                continue
            if view.get("type") == "vlan":
                vlan_zones.add(zone_id)
            elif view.get("type") == "qinq" and str(view.get("tag", "")).isdigit():
                users.setdefault((f"zone {zone_id}", int(view["tag"])), f"QinQ zone {zone_id} (service VLAN){note}")
    for vnet in vnets:
        vnet_id = str(vnet.get("vnet"))
        for view, note in sdn_views(vnet):
            if view.get("zone") in vlan_zones and str(view.get("tag", "")).isdigit():
                users.setdefault((vnet_id, int(view["tag"])), f"VNet {vnet_id} in zone {view['zone']}{note}")
    return [VlanUser(frozenset({vlan}), who) for (_, vlan), who in users.items()]


# ---- the census ----------------------------------------------------------------------------------------------------
class VlanCensus:
    """Reads the cluster: one list call per SDN object type and node resource, one config read per guest."""

    def __init__(self, client: PveClient, bridge: str, own_zone: str, where: str):
        self.client = client
        self.bridge = bridge
        self.own_zone = own_zone
        self.where = where  # "<site file>: backend", for refusals that are not about one VLAN

    def take(self) -> list[VlanUser]:
        # the token may audit every guest and zone: the privilege preflight (privileges.py) checked it first,
        # as Proxmox leaves out of its lists, without a word, what a token may not audit
        users = sdn_users(
            self.client.get("cluster/sdn/zones", pending=1) or [],
            self.client.get("cluster/sdn/vnets", pending=1) or [],
            self.bridge,
            self.own_zone,
        )
        nodes = self.client.get("nodes") or []
        absent = sorted(f"{n.get('node')} ({n.get('status', 'unknown')})" for n in nodes if n.get("status") != "online")
        if absent:
            nodes_are = f"node {absent[0]} is" if len(absent) == 1 else f"nodes {', '.join(absent)} are"
            raise InputError(
                f"{self.where}: {nodes_are} not online, so the guests and interfaces there cannot be read, and one "
                f"of them could use a VLAN of this site on {self.bridge}; allowed: plan and apply while every node "
                "of the cluster is online (or once the node is removed from the cluster)"
            )
        for node in sorted(str(n.get("node")) for n in nodes):
            users += self._node(node)
        return users

    def _node(self, node: str) -> list[VlanUser]:
        try:
            users = interface_users(self.client.get(f"nodes/{node}/network") or [], self.bridge, node)
            for kind, noun in GUEST_KINDS:
                for guest in self.client.get(f"nodes/{node}/{kind}") or []:
                    users += self._guest(node, kind, noun, guest)
        except PveError as exc:
            raise InputError(
                f"{self.where}: node {node} cannot be read ({exc}), so a guest or interface there could use a VLAN "
                f"of this site on {self.bridge}; allowed: plan and apply while every node of the cluster answers"
            ) from exc
        return users

    def _guest(self, node: str, kind: str, noun: str, guest: dict[str, Any]) -> list[VlanUser]:
        """A template is on no network until it is cloned (its clones are guests of their own); a guest removed
        between the list and the read uses nothing any more."""
        if int(guest.get("template") or 0):
            return []
        vmid = guest.get("vmid")
        try:
            config = self.client.get(f"nodes/{node}/{kind}/{vmid}/config") or {}
        except PveError as exc:
            if exc.status == 500 and "does not exist" in exc.reason:
                return []
            raise
        name = config.get("name") or config.get("hostname") or guest.get("name") or "no name"
        return nic_users(config, self.bridge, f"{noun} {vmid} '{name}'", node)


# ---- the refusal ---------------------------------------------------------------------------------------------------
def refuse_shared_vlans(site: Site, site_path: Path, client: PveClient, bridge: str, own_zone: str) -> None:
    """Raise SiteError (exit 2) naming each VLAN of the site file that is VLAN 1 or that something other than
    the site's own zone already uses on `bridge`; InputError when the cluster cannot be read in full."""
    wanted = wanted_vlans(site)
    problems: list[tuple[KeyPath, str]] = []
    for want in wanted:
        if want.vlan == NATIVE_VLAN:
            problems.append(
                (
                    want.path,
                    f"VLAN 1 ({want.segment}) is the default (native) VLAN of most switches, and the VLAN Proxmox "
                    f"puts every untagged guest NIC on a VLAN-aware bridge ({bridge}) in: the segment would share "
                    "their broadcast domain; allowed: a VLAN id 2-4094 of its own",
                )
            )
    census = VlanCensus(client, bridge, own_zone, f"{site_path}: backend")
    try:
        users = census.take()
    except InputError:
        if problems:  # what the site file alone shows is wrong is said first
            raise SiteError(_located(site_path, problems)) from None
        raise
    taken = {vlan for user in users for vlan in user.vlans}
    own = {w.vlan for w in wanted}
    for want in wanted:
        if want.vlan == NATIVE_VLAN:
            continue
        who = sorted({u.who for u in users if want.vlan in u.vlans})
        if not who:
            continue
        named = ", ".join(who[:MAX_NAMED]) + (f" and {len(who) - MAX_NAMED} more" if len(who) > MAX_NAMED else "")
        problems.append(
            (
                want.path,
                f"VLAN {want.vlan} ({want.segment}) is already in use on bridge {bridge} by {named}: the segment "
                f"would share their broadcast domain; allowed: a VLAN id 2-4094 that nothing but this site uses on "
                f"{bridge} (in use there by others: {vlan_ranges(taken)}; this site's: {vlan_ranges(own)})",
            )
        )
    if problems:
        raise SiteError(_located(site_path, problems))


def _located(site_path: Path, problems: list[tuple[KeyPath, str]]) -> list[SiteProblem]:
    """The site file is read again for the lines of the keys (the loaded site keeps only its path)."""
    try:
        source = load_yaml(site_path)
        lines = [source.line_of(path) for path, _ in problems]
    except (OSError, YamlInputError):
        lines = [None for _ in problems]
    located = [
        SiteProblem(str(site_path), line, format_path(path), message)
        for (path, message), line in zip(problems, lines, strict=True)
    ]
    return sorted(located, key=lambda p: p.line or 0)  # in the order of the file
