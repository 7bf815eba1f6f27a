"""Open vSwitch on the hypervisor through ovs-vsctl: the site's bridge, its management port, port tags, and the
access port of verify's probe on a segment.

Everything the backend creates carries external_ids:provisioner-site=<site> in the same transaction that
creates it, so discovery never guesses by name; the probe's port carries provisioner-kind=probe and
provisioner-segment=<segment> as well.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import cast

from provisioner.backends.network import probe_point
from provisioner.backends.network.probe_point import Command, ProbePoint
from provisioner.controller.shell import run

SITE_KEY = "provisioner-site"
KIND_KEY = "provisioner-kind"
SEGMENT_KEY = "provisioner-segment"
VSCTL = ("ovs-vsctl", "--timeout=30")


@dataclass
class Port:
    name: str
    tag: int | None
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def is_probe(self) -> bool:
        """The access port of verify's probe: the controller's own, never something on the segment to explain."""
        return self.external_ids.get(KIND_KEY) == probe_point.KIND


def _vsctl(*args: str, check: bool = True) -> str:
    return run([*VSCTL, *args], check=check).stdout


def _decode(value: object) -> object:
    """ovs-vsctl's JSON: ["set", []] is empty, ["map", [[k, v]...]] a dict, ["uuid", x] an id."""
    if isinstance(value, list) and len(value) == 2 and value[0] in ("set", "map", "uuid"):
        if value[0] == "map":
            return {k: v for k, v in value[1]}
        if value[0] == "set":
            return [_decode(v) for v in value[1]] or None
        return value[1]
    return value


def _table(table: str, columns: str) -> list[dict[str, object]]:
    data = json.loads(_vsctl("--format=json", f"--columns={columns}", "list", table) or '{"data": []}')
    names = data["headings"]
    return [{name: _decode(value) for name, value in zip(names, row, strict=True)} for row in data["data"]]


def bridges() -> dict[str, dict[str, str]]:
    """bridge name -> external_ids"""
    return {
        str(row["name"]): dict(cast(dict[str, str], row["external_ids"] or {}))
        for row in _table("bridge", "name,external_ids")
    }


def ports() -> dict[str, Port]:
    found = {}
    for row in _table("port", "name,tag,external_ids"):
        tag = row["tag"]
        ids = dict(row["external_ids"] or {})  # type: ignore[call-overload]
        found[str(row["name"])] = Port(str(row["name"]), tag if isinstance(tag, int) else None, ids)
    return found


def ports_on(bridge: str) -> list[str]:
    return _vsctl("list-ports", bridge).split()


def create_bridge(name: str, site: str, datapath: str) -> None:
    _vsctl("--may-exist", "add-br", name, "--", "set", "bridge", name, f"datapath_type={datapath}",
           f"external_ids:{SITE_KEY}={site}")  # fmt: skip
    run(["ip", "link", "set", name, "up"])


def delete_bridge(name: str) -> None:
    _vsctl("--if-exists", "del-br", name)


def add_internal_port(bridge: str, name: str, tag: int, site: str) -> None:
    _vsctl("--may-exist", "add-port", bridge, name, f"tag={tag}", "--", "set", "interface", name, "type=internal",
           "--", "set", "port", name, f"tag={tag}", f"external_ids:{SITE_KEY}={site}")  # fmt: skip
    run(["ip", "link", "set", name, "up"])


def delete_port(name: str) -> None:
    _vsctl("--if-exists", "del-port", name)


def set_tag(port: str, tag: int) -> None:
    _vsctl("set", "port", port, f"tag={tag}")


def probe_ports(site: str) -> list[str]:
    """The access ports of the site's probes (a killed verify may leave one)."""
    return sorted(p.name for p in ports().values() if p.is_probe and p.external_ids.get(SITE_KEY) == site)


def remove_probe_ports(site: str) -> list[str]:
    """Takes the site's probe ports off the switch, wherever they are; returns their names."""
    found = probe_ports(site)
    for name in found:
        delete_port(name)
    return found


@dataclass(frozen=True)
class OvsAccessPort:
    """The probe's veth as an access port of the segment's Open vSwitch bridge, tagged with the segment's VLAN:
    the switch puts it on the segment exactly as it puts a guest's port there (libvirt's portgroup)."""

    vlan: int

    def attach(self, point: ProbePoint) -> list[Command]:
        labels = {SITE_KEY: point.site, KIND_KEY: probe_point.KIND, SEGMENT_KEY: point.segment}
        return [
            [*VSCTL, "--may-exist", "add-port", point.bridge, point.port, f"tag={self.vlan}",
             "--", "set", "port", point.port, f"tag={self.vlan}",
             *(f"external_ids:{key}={value}" for key, value in labels.items())],
            ["ip", "link", "set", point.port, "up"],
            # Open vSwitch's userspace (netdev) datapath forwards frames without finishing the checksums a sender
            # left to its NIC (the guests' offloads are off for it, see xmlspec): the probe finishes its own
            ["ip", "netns", "exec", point.namespace, sys.executable, "-c", probe_point.NO_CHECKSUM_OFFLOAD,
             probe_point.INTERFACE],
        ]  # fmt: skip

    def detach(self, point: ProbePoint) -> list[Command]:
        return [[*VSCTL, "--if-exists", "del-port", point.port]]

    def describe(self, point: ProbePoint) -> str:
        return f"{point.bridge} VLAN {self.vlan}"
