"""Open vSwitch on the hypervisor through ovs-vsctl: the site's bridge, its management port, port tags.

Everything the backend creates carries external_ids:provisioner-site=<site> in the same transaction that
creates it, so discovery never guesses by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import cast

from provisioner.controller.shell import run

SITE_KEY = "provisioner-site"


@dataclass
class Port:
    name: str
    tag: int | None
    external_ids: dict[str, str] = field(default_factory=dict)


def _vsctl(*args: str, check: bool = True) -> str:
    return run(["ovs-vsctl", "--timeout=30", *args], check=check).stdout


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
