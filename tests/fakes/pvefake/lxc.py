"""LXC guests, read-only: list, index, config. The fake has no container lifecycle; tests place containers with
`FakePve.add_lxc` (a config as `pct create` leaves it) so that clients see them where PVE lists them.

Semantics follow pve-container's API2/LXC.pm: the list holds only containers the caller may audit, the config
answers numbers for integer/boolean keys and adds the file's `digest`, a missing container is a 500 naming its
config file.
"""

from __future__ import annotations

from typing import Any

from .api import Api, Request, Routes
from .errors import die
from .state import IDLE_COUNTERS, Container
from .vmconfig import memory_mib

ROUTES = Routes()
_INT_KEYS = frozenset({"cores", "memory", "swap", "onboot", "template", "protection", "unprivileged", "tty"})


def get_container(api: Api, node: str, vmid: int | str) -> Container:
    ct = api.state.containers.get(int(vmid))
    if ct is None:
        raise die(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
    return ct


def typed_value(api: Api, key: str, value: str) -> Any:
    """As `pct config`: integers and booleans as numbers, everything else as written."""
    prop = None
    if api.schema is not None:
        op = api.schema.operation("PUT", "/nodes/{node}/lxc/{vmid}/config")
        prop = api.schema.property_schema(op, key) if op else None
    kind = prop.get("type") if prop else ("integer" if key in _INT_KEYS else "string")
    if kind in ("integer", "boolean"):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def ct_summary(ct: Container) -> dict[str, Any]:
    cfg = ct.config
    out: dict[str, Any] = {
        "vmid": ct.vmid,
        "name": ct.name,
        "status": ct.status,
        "cpus": int(cfg.get("cores", "1")),
        "maxmem": memory_mib(cfg) << 20,
        "maxswap": int(cfg.get("swap", "512")) << 20,
        "maxdisk": 0,
        "mem": 0,
        "cpu": 0,
        "uptime": 0,
        **IDLE_COUNTERS,
    }
    if ct.is_template:
        out["template"] = 1
    return {**out, **ct.marks()}


@ROUTES.add("GET", "/nodes/{node}/lxc")
def list_containers(api: Api, req: Request) -> list[dict[str, Any]]:
    return [
        ct_summary(ct)
        for vmid, ct in sorted(api.state.containers.items())
        if api.state.node_of(ct) == req.params["node"] and api.perms.has(req.who, f"/vms/{vmid}", ["VM.Audit"])
    ]


@ROUTES.add("GET", "/nodes/{node}/lxc/{vmid}")
def container_index(api: Api, req: Request) -> list[dict[str, str]]:
    get_container(api, req.params["node"], req.params["vmid"])
    names = ("config", "pending", "status", "firewall", "snapshot", "rrd")
    return [{"subdir": n} for n in names]


@ROUTES.add("GET", "/nodes/{node}/lxc/{vmid}/config")
def get_config(api: Api, req: Request) -> dict[str, Any]:
    ct = get_container(api, req.params["node"], req.params["vmid"])
    if req.params.get("snapshot") is not None:
        raise die(f"snapshot '{req.params['snapshot']}' does not exist")
    # no pending changes for containers in the fake: `current` shows the same config
    out = {key: typed_value(api, key, value) for key, value in sorted(ct.config.items())}
    out["digest"] = ct.digest()
    return out
