"""Linux bridges and veths on the controller, labelled with the interface alias."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from provisioner.controller.shell import run

ALIAS_PREFIX = "provisioner "


@dataclass
class Link:
    name: str
    kind: str
    labels: dict[str, str]
    master: str | None


def parse_alias(alias: str | None) -> dict[str, str]:
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return {}
    return dict(part.split("=", 1) for part in alias[len(ALIAS_PREFIX) :].split() if "=" in part)


def format_alias(labels: dict[str, str]) -> str:
    return ALIAS_PREFIX + " ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def list_links() -> list[Link]:
    data = json.loads(run(["ip", "-d", "-j", "link", "show"]).stdout or "[]")
    return [
        Link(
            name=item["ifname"],
            kind=item.get("linkinfo", {}).get("info_kind", ""),
            labels=parse_alias(item.get("ifalias")),
            master=item.get("master"),
        )
        for item in data
    ]


def create_bridge(name: str, labels: dict[str, str]) -> None:
    """Create, label, switch IPv6 off, bring up. Callers journal the name first: the link exists unlabelled for a
    moment."""
    run(["ip", "link", "add", "name", name, "type", "bridge"])
    run(["ip", "link", "set", name, "alias", format_alias(labels)])
    disable_ipv6(name)
    run(["ip", "link", "set", name, "up"])


def _ipv6_switch(device: str) -> Path:
    return Path("/proc/sys/net/ipv6/conf") / device / "disable_ipv6"


def disable_ipv6(device: str) -> None:
    """No IPv6 address on the controller's side of a segment: with one (even link-local), every machine on the
    segment could reach the controller over IPv6, past the gateway."""
    switch = _ipv6_switch(device)
    if switch.exists():
        switch.write_text("1\n")


def ipv6_enabled(device: str) -> bool:
    switch = _ipv6_switch(device)
    return switch.exists() and switch.read_text().strip() == "0"


def set_address(bridge: str, cidr: str) -> None:
    run(["ip", "address", "replace", cidr, "dev", bridge])


def delete_address(device: str, cidr: str) -> None:
    run(["ip", "address", "delete", cidr, "dev", device], check=False)


def addresses(device: str) -> set[str]:
    data = json.loads(run(["ip", "-j", "-4", "address", "show", "dev", device]).stdout or "[]")
    return {f"{a['local']}/{a['prefixlen']}" for item in data for a in item.get("addr_info", [])}


def all_addresses() -> set[str]:
    """Every IPv4 address this machine holds, on any device (address/prefix)."""
    data = json.loads(run(["ip", "-j", "-4", "address", "show"]).stdout or "[]")
    return {f"{a['local']}/{a['prefixlen']}" for item in data for a in item.get("addr_info", [])}


def delete_link(name: str) -> None:
    run(["ip", "link", "delete", name], check=False)


def attach(veth: str, bridge: str) -> None:
    run(["ip", "link", "set", veth, "master", bridge, "up"])


def routes_to(cidr: str) -> list[dict]:
    """Every IPv4 route of the main table for exactly this destination, whatever its device."""
    return json.loads(run(["ip", "-j", "-4", "route", "show", "exact", cidr]).stdout or "[]")


def routes_via(device: str) -> dict[str, str]:
    data = json.loads(run(["ip", "-j", "-4", "route", "show", "dev", device]).stdout or "[]")
    return {r["dst"]: r["gateway"] for r in data if "gateway" in r}


def replace_route(cidr: str, via: str, device: str) -> None:
    run(["ip", "route", "replace", cidr, "via", via, "dev", device])


def delete_route(cidr: str, device: str) -> None:
    run(["ip", "route", "delete", cidr, "dev", device], check=False)


def sync_routes(device: str, wanted: dict[str, str]) -> None:
    """Make the gateway routes on device exactly wanted ({cidr: via}), touching only those that differ."""
    present = routes_via(device)
    for cidr, via in wanted.items():
        if present.get(cidr) != via:
            replace_route(cidr, via, device)
    for cidr in present:
        if cidr not in wanted:
            delete_route(cidr, device)
