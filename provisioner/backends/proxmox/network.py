"""Networks on Proxmox SDN: one VLAN zone on the configured bridge, one VNet per segment tagged with the
segment's VLAN id, one subnet per VNet. SDN writes stay pending until `PUT /cluster/sdn` applies them, so the
backend batches every change and applies once, then waits until every node reports the networks up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioner.backends.proxmox.client import PveClient, PveError
from provisioner.backends.proxmox.names import Names
from provisioner.backends.proxmox.sdn_status import confirm_applied
from provisioner.planning.desired import SegmentSpec

Say = Callable[[str], None]


@dataclass(frozen=True)
class VnetDesign:
    segment: SegmentSpec
    vnet: str
    alias: str

    @property
    def subnet_id(self) -> str:
        """Proxmox stores a subnet as <zone>-<ip>-<prefix>."""
        net = self.segment.cidr
        return f"{{zone}}-{net.network_address}-{net.prefixlen}"


def vnet_design(names: Names, segment: SegmentSpec) -> VnetDesign:
    """The VNet of a segment; its alias names the segment's key (an environment, an access network or mgmt), by
    which a VNet the site no longer declares is found again."""
    alias = f"provisioner {names.site.site} {segment.key} {segment.cidr}"
    return VnetDesign(segment, names.vnet(segment.key), alias)


def vnet_drift(design: VnetDesign, found: dict[str, Any], zone: str) -> list[str]:
    problems = []
    if found.get("zone") != zone:
        problems.append(f"VNet {design.vnet} is in zone {found.get('zone')}, expected {zone}")
    if found.get("tag") is not None and int(found["tag"]) != design.segment.vlan:
        problems.append(f"VNet {design.vnet} carries VLAN {found.get('tag')}, expected {design.segment.vlan}")
    if (found.get("alias") or "") != design.alias:
        problems.append(f"VNet {design.vnet} describes another subnet ({found.get('alias') or 'no alias'})")
    if found.get("state"):
        problems.append(f"VNet {design.vnet} has SDN changes not applied yet ({found['state']})")
    return problems


class SdnWriter:
    """Creates and removes SDN objects; remembers whether anything needs applying."""

    def __init__(self, client: PveClient, names: Names, bridge: str):
        self.client = client
        self.names = names
        self.bridge = bridge
        self.changed = False

    def _exists(self, path: str, key: str, value: str) -> bool:
        try:
            return any(item.get(key) == value for item in self.client.get(path) or [])
        except PveError:
            return False

    def ensure_zone(self) -> None:
        zone = self.names.zone
        zones = {z["zone"]: z for z in self.client.get("cluster/sdn/zones") or []}
        if zone in zones:
            found = zones[zone]
            if found.get("type") != "vlan" or found.get("bridge") != self.bridge:
                raise PveError(
                    f"SDN zone {zone} exists but is not a VLAN zone on {self.bridge} "
                    f"(type {found.get('type')}, bridge {found.get('bridge')}); set backend.zone to another id"
                )
            return
        self.client.call(
            "POST",
            "cluster/sdn/zones",
            {"zone": zone, "type": "vlan", "bridge": self.bridge, "ipam": "pve"},
            settle=lambda: self._exists("cluster/sdn/zones", "zone", zone),
        )
        self.changed = True

    def ensure_segments(self, segments: list[tuple[str, SegmentSpec]], vnets: list[dict[str, Any]], say: Say) -> None:
        """The zone, then a VNet and its subnet per (action, segment); vnets: the cluster's, as listed."""
        self.ensure_zone()
        found = {str(v.get("vnet")): v for v in vnets}
        for action, seg in segments:
            design = vnet_design(self.names, seg)
            say(f"{action} segment {seg.key}: VNet {design.vnet} (VLAN {seg.vlan}, {seg.cidr})")
            self.ensure_vnet(design, found.get(design.vnet))

    def ensure_vnet(self, design: VnetDesign, found: dict[str, Any] | None) -> None:
        zone = self.names.zone
        if found is not None and found.get("zone") not in (None, zone):
            raise PveError(
                f"VNet {design.vnet} already exists in zone {found.get('zone')}: it is not this site's; "
                f"name another VNet in the site file (environments[].segment.vnet)"
            )
        if found is None:
            self.client.call(
                "POST",
                "cluster/sdn/vnets",
                {"vnet": design.vnet, "zone": zone, "tag": design.segment.vlan, "alias": design.alias},
                settle=lambda: self._exists("cluster/sdn/vnets", "vnet", design.vnet),
            )
            self.changed = True
        elif int(found.get("tag") or 0) != design.segment.vlan or (found.get("alias") or "") != design.alias:
            self.client.put(f"cluster/sdn/vnets/{design.vnet}", tag=design.segment.vlan, alias=design.alias)
            self.changed = True
        elif found.get("state"):
            self.changed = True  # written by an interrupted apply, not applied yet
        self._ensure_subnet(design)

    def _ensure_subnet(self, design: VnetDesign) -> None:
        path = f"cluster/sdn/vnets/{design.vnet}/subnets"
        cidr = str(design.segment.cidr)
        subnet_id = design.subnet_id.format(zone=self.names.zone)
        found = {s.get("subnet"): s for s in self.client.get(path) or []}
        gateway = str(design.segment.gateway)
        for other_id in list(found):
            if other_id != subnet_id:
                self.client.call("DELETE", f"{path}/{other_id}", {}, settle=lambda o=other_id: o not in self._ids(path))  # type: ignore[misc]
                self.changed = True
        have = found.get(subnet_id)
        if have is None:
            self.client.call(
                "POST",
                path,
                {"subnet": cidr, "type": "subnet", "gateway": gateway},
                settle=lambda: subnet_id in self._ids(path),
            )
            self.changed = True
        elif have.get("gateway") != gateway:
            self.client.put(f"{path}/{subnet_id}", gateway=gateway)
            self.changed = True

    def _ids(self, path: str) -> set[str]:
        try:
            return {str(s.get("subnet")) for s in self.client.get(path) or []}
        except PveError:
            return set()

    def remove_vnet(self, vnet: str) -> None:
        path = f"cluster/sdn/vnets/{vnet}/subnets"
        for subnet_id in self._ids(path):
            self.client.call("DELETE", f"{path}/{subnet_id}", {}, settle=lambda s=subnet_id: s not in self._ids(path))  # type: ignore[misc]
        if self._exists("cluster/sdn/vnets", "vnet", vnet):
            self._delete("cluster/sdn/vnets", "vnet", vnet)
        self.changed = True

    def remove_zone_if_empty(self) -> None:
        zone = self.names.zone
        vnets = [v for v in self.client.get("cluster/sdn/vnets") or [] if v.get("zone") == zone]
        if vnets or not self._exists("cluster/sdn/zones", "zone", zone):
            return
        self._delete("cluster/sdn/zones", "zone", zone)
        self.changed = True

    def _delete(self, path: str, key: str, value: str) -> None:
        """DELETE path/value, settled once the listing at path no longer holds it."""
        self.client.call("DELETE", f"{path}/{value}", {}, settle=lambda: not self._exists(path, key, value))

    def apply(self, vnets: set[str], say: Say) -> None:
        """Apply every pending SDN change at once, then wait until every node reports the site's VNets up: the
        task's end only says the nodes were asked to reload (sdn_status.py)."""
        self.client.run_task("PUT", "cluster/sdn", "applying the SDN configuration")
        self.changed = False
        confirm_applied(self.client, self.names.zone, vnets, self.client.settings.task_timeout, say)
