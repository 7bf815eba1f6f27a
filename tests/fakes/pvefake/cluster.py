"""Cluster-wide and node read routes: version, nodes, status, resources, nextid, storage, tasks."""

from __future__ import annotations

import time
from typing import Any

from .api import Api, Request, Routes
from .common import flag, opt_int, version_info
from .errors import ApiError, param_error
from .sdn_model import running_vnet_bridges
from .state import IDLE_COUNTERS, Storage
from .tasks import parse_upid
from .vmconfig import max_disk, memory_mib, vcpus

ROUTES = Routes()
NODE_MEM = 64 << 30
NODE_CPUS = 16
BOOT_TIME = time.time()


@ROUTES.add("GET", "/version")
def get_version(api: Api, req: Request) -> dict[str, Any]:
    return version_info(api.state.version)


def _node_entry(api: Api) -> dict[str, Any]:
    return {
        "node": api.state.node,
        "id": f"node/{api.state.node}",
        "type": "node",
        "status": "online",
        "level": "",
        "cpu": 0.02,
        "maxcpu": NODE_CPUS,
        "mem": 4 << 30,
        "maxmem": NODE_MEM,
        "uptime": int(time.time() - BOOT_TIME),
        "ssl_fingerprint": ":".join(["AB"] * 32),
    }


def _member_entry(name: str, status: str) -> dict[str, Any]:
    """Another cluster member as PVE lists it; one that is not online has no statistics to show."""
    entry: dict[str, Any] = {"node": name, "id": f"node/{name}", "type": "node", "status": status, "level": ""}
    if status == "online":
        entry.update({"cpu": 0.01, "maxcpu": NODE_CPUS, "mem": 2 << 30, "maxmem": NODE_MEM, "uptime": 3600})
    return entry


def node_entries(api: Api) -> list[dict[str, Any]]:
    others = [_member_entry(n, s) for n, s in sorted(api.state.other_nodes.items())]
    return sorted([_node_entry(api), *others], key=lambda e: str(e["node"]))


@ROUTES.add("GET", "/nodes")
def list_nodes(api: Api, req: Request) -> list[dict[str, Any]]:
    return node_entries(api)


@ROUTES.add("GET", "/nodes/{node}")
def node_index(api: Api, req: Request) -> list[dict[str, str]]:
    return [{"name": n} for n in ("qemu", "lxc", "storage", "tasks", "status", "sdn", "network", "version")]


@ROUTES.add("GET", "/nodes/{node}/status")
def node_status(api: Api, req: Request) -> dict[str, Any]:
    info = version_info(api.state.version)
    return {
        "uptime": int(time.time() - BOOT_TIME),
        "cpu": 0.02,
        "loadavg": ["0.10", "0.05", "0.01"],
        "memory": {"total": NODE_MEM, "used": 4 << 30, "free": NODE_MEM - (4 << 30)},
        "cpuinfo": {"cpus": NODE_CPUS, "sockets": 1, "cores": NODE_CPUS, "model": "pvefake vCPU"},
        "pveversion": f"pve-manager/{info['version']}/{info['repoid']}",
        "kversion": "Linux 6.8.12-pve #1 SMP PREEMPT_DYNAMIC",
    }


@ROUTES.add("GET", "/nodes/{node}/version")
def node_version(api: Api, req: Request) -> dict[str, Any]:
    return version_info(api.state.version)


@ROUTES.add("GET", "/cluster/status")
def cluster_status(api: Api, req: Request) -> list[dict[str, Any]]:
    # A standalone node: PVE lists just the node entry (no `cluster` entry without corosync).
    return [
        {
            "type": "node",
            "id": f"node/{api.state.node}",
            "name": api.state.node,
            "ip": "127.0.0.1",
            "local": 1,
            "nodeid": 0,
            "online": 1,
            "level": "",
        }
    ]


@ROUTES.add("GET", "/cluster/nextid")
def next_id(api: Api, req: Request) -> str:
    # The schema says integer, but PVE answers a string; nothing is reserved (the clone may lose the race).
    wanted = opt_int(req.params, "vmid")
    if wanted is not None:
        if api.state.vmid_taken(wanted):
            raise param_error({"vmid": f"VM {wanted} already exists"})
        return str(wanted)
    vmid = 100
    while api.state.vmid_taken(vmid):
        vmid += 1
    return str(vmid)


def vm_resource(api: Api, vmid: int) -> dict[str, Any]:
    vm = api.state.vms[vmid]
    cfg = vm.config
    entry: dict[str, Any] = {
        "id": f"qemu/{vmid}",
        "type": "qemu",
        "vmid": vmid,
        "name": vm.name,
        "node": api.state.node_of(vm),
        "status": vm.status,
        "template": 1 if vm.is_template else 0,
        "maxmem": memory_mib(cfg) << 20,
        "maxcpu": vcpus(cfg),
        "maxdisk": max_disk(cfg),
        "mem": (memory_mib(cfg) << 19) if vm.status == "running" else 0,
        "cpu": 0.01 if vm.status == "running" else 0,
        "uptime": int(time.time() - vm.started_at) if vm.status == "running" and vm.started_at else 0,
        **IDLE_COUNTERS,
        **vm.marks(),
    }
    pool = api.state.pool_of(vmid)
    if pool:
        entry["pool"] = pool
    ha = api.state.ha_of(vmid)
    if ha is not None:  # the CRM's service state, else the configured one (pve-manager's resources index)
        entry["hastate"] = ha.crm_state or ha.state
    return entry


def ct_resource(api: Api, vmid: int) -> dict[str, Any]:
    ct = api.state.containers[vmid]
    entry: dict[str, Any] = {
        "id": f"lxc/{vmid}",
        "type": "lxc",
        "vmid": vmid,
        "name": ct.name,
        "node": api.state.node_of(ct),
        "status": ct.status,
        "template": 1 if ct.is_template else 0,
        "maxmem": memory_mib(ct.config) << 20,
        "maxcpu": int(ct.config.get("cores", "1")),
        "maxdisk": 0,
        "mem": 0,
        "cpu": 0,
        "uptime": 0,
        **IDLE_COUNTERS,
        **ct.marks(),
    }
    return entry


@ROUTES.add("GET", "/cluster/resources")
def resources(api: Api, req: Request) -> list[dict[str, Any]]:
    kind = req.params.get("type")
    out: list[dict[str, Any]] = []
    if kind in (None, "node"):
        for node in node_entries(api):
            node.pop("ssl_fingerprint", None)
            out.append(node)
    if kind in (None, "vm"):
        for vmid in sorted(set(api.state.vms) | set(api.state.containers)):
            if api.perms.has(req.who, f"/vms/{vmid}", ["VM.Audit"]):
                out.append(vm_resource(api, vmid) if vmid in api.state.vms else ct_resource(api, vmid))
    if kind in (None, "storage"):
        for store in sorted(api.state.storages.values(), key=lambda s: s.storage):
            if api.perms.has(
                req.who, f"/storage/{store.storage}", ["Datastore.Audit", "Datastore.AllocateSpace"], True
            ):
                out.append(
                    {
                        "id": f"storage/{api.state.node}/{store.storage}",
                        "type": "storage",
                        "storage": store.storage,
                        "node": api.state.node,
                        "status": "available",
                        "plugintype": store.type,
                        "content": store.content,
                        "shared": store.shared,
                        "maxdisk": 500 << 30,
                        "disk": 10 << 30,
                    }
                )
    if kind in (None, "sdn"):
        for zone in sorted(api.state.sdn.running.zones):
            if api.perms.has(req.who, f"/sdn/zones/{zone}", ["SDN.Audit"]):
                out.append(
                    {
                        "id": f"sdn/{api.state.node}/{zone}",
                        "type": "sdn",
                        "sdn": zone,
                        "node": api.state.node,
                        "status": "ok",
                    }
                )
    if kind is None:
        for pool in sorted(api.state.pools):
            if api.perms.has(req.who, f"/pool/{pool}", ["Pool.Audit"]):
                out.append({"id": f"/pool/{pool}", "type": "pool", "pool": pool})
    return out


@ROUTES.add("GET", "/storage")
def list_storage(api: Api, req: Request) -> list[dict[str, Any]]:
    wanted = req.params.get("type")
    return [
        _storage_config(s)
        for s in sorted(api.state.storages.values(), key=lambda s: s.storage)
        if wanted in (None, s.type)
        and api.perms.has(req.who, f"/storage/{s.storage}", ["Datastore.Audit", "Datastore.AllocateSpace"], True)
    ]


@ROUTES.add("GET", "/storage/{storage}")
def get_storage(api: Api, req: Request) -> dict[str, Any]:
    store = api.state.storages.get(req.params["storage"])
    if store is None:
        raise ApiError(500, f"storage '{req.params['storage']}' does not exist")
    return _storage_config(store)


def _storage_config(store: Storage) -> dict[str, Any]:
    """A storage.cfg section as the API lists it: `disable` and `nodes` only where set."""
    entry: dict[str, Any] = {
        "storage": store.storage,
        "type": store.type,
        "content": store.content,
        "shared": store.shared,
        "digest": "0" * 40,
    }
    if store.disable:
        entry["disable"] = 1
    if store.nodes is not None:
        entry["nodes"] = ",".join(sorted(store.nodes))
    return entry


@ROUTES.add("GET", "/nodes/{node}/storage")
def node_storage(api: Api, req: Request) -> list[dict[str, Any]]:
    """PVE::Storage::storage_info as the status index lists it: every storage, `enabled` 0 when it is disabled or
    not for this node (skipped when a content type is asked for), sizes 0 and `active` 0 when it is not active."""
    node = str(req.params["node"])
    wanted = [c for c in str(req.params.get("content") or "").split(",") if c]
    out = []
    for s in sorted(api.state.storages.values(), key=lambda s: s.storage):
        enabled = not s.disable and s.on(node)
        if wanted and (not enabled or not set(wanted) & set(s.content.split(","))):
            continue
        if flag(req.params, "enabled") and s.disable:
            continue
        if not api.perms.has(req.who, f"/storage/{s.storage}", ["Datastore.Audit", "Datastore.AllocateSpace"], True):
            continue
        active = enabled and s.active
        entry: dict[str, Any] = {
            "storage": s.storage,
            "type": s.type,
            "content": s.content,
            "shared": s.shared,
            "active": 1 if active else 0,
            "enabled": 1 if enabled else 0,
            "total": s.total if active else 0,
            "used": s.used if active else 0,
            "avail": s.total - s.used if active else 0,
        }
        if active and s.total:
            entry["used_fraction"] = s.used / s.total
        out.append(entry)
    return out


def _may_see_bridge(api: Api, req: Request, bridge: str) -> bool:
    """pve-manager's network index lists a bridge only to whom RPCEnvironment::check_sdn_bridge allows SDN.Audit or
    SDN.Use on `/sdn/zones/localnetwork/<bridge>`, or on one of its VLANs that has an ACL of its own."""
    if req.who.is_root:
        return True
    path = f"/sdn/zones/localnetwork/{bridge}"
    privs = ["SDN.Audit", "SDN.Use"]
    vlans = {k.path for k in api.state.acls if k.path.startswith(path + "/")}
    return any(api.perms.has(req.who, p, privs, any_of=True) for p in [path, *sorted(vlans)])


@ROUTES.add("GET", "/nodes/{node}/network")
def node_network(api: Api, req: Request) -> list[dict[str, Any]]:
    # The bridges the test set up (every member has them, as a zone's bridge must be on every node), the node's
    # own VLAN interfaces, plus applied vnets for `any_bridge`/`include_sdn`.
    kind = req.params.get("type")
    node = str(req.params["node"])
    out: list[dict[str, Any]] = []
    if kind in (None, "bridge", "any_bridge", "any_local_bridge", "include_sdn"):
        out += [
            {
                "iface": b.name,
                "type": "bridge",
                "active": 1,
                "autostart": 1,
                "method": "manual",
                "families": ["inet"],
                "bridge_ports": "eno1",
                "bridge_vlan_aware": 1 if b.vlan_aware else 0,
                "priority": index,
            }
            for index, b in enumerate(sorted(api.state.bridges.values(), key=lambda b: b.name))
            if b.on(node) and _may_see_bridge(api, req, b.name)
        ]
    if kind is None or kind == "vlan":
        out += [
            dict(entry)
            for (where, _), entry in sorted(api.state.interfaces.items())
            if where == node and kind in (None, entry.get("type"))
        ]
    if kind in ("any_bridge", "include_sdn"):
        out += [{"iface": v, "type": "vnet", "active": 1} for v in sorted(running_vnet_bridges(api.state))]
    return out


# -- tasks --------------------------------------------------------------------------------------


def _task_or_400(api: Api, req: Request):
    upid = req.params["upid"]
    if parse_upid(upid) is None:
        raise param_error({"upid": "unable to parse worker upid"})
    task = api.state.tasks.get(upid)
    invisible = task is not None and time.monotonic() - task.created < api.faults.task_invisible_seconds
    # each node keeps its own task log folder: another node's task is not found there
    if task is None or invisible or task.node != req.params["node"]:
        raise param_error({"upid": "no such task"})
    if req.who.auth_id != task.user and not (req.who.tokenid is None and task.user.split("!")[0] == req.who.userid):
        api.perms.check(req.who, f"/nodes/{api.state.node}", ["Sys.Audit"])
    return task


@ROUTES.add("GET", "/nodes/{node}/tasks/{upid}")
def task_index(api: Api, req: Request) -> list[dict[str, str]]:
    _task_or_400(api, req)
    return [{"name": "log"}, {"name": "status"}]


@ROUTES.add("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(api: Api, req: Request) -> dict[str, Any]:
    return _task_or_400(api, req).status_dict()


@ROUTES.add("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(api: Api, req: Request) -> list[dict[str, Any]]:
    task = _task_or_400(api, req)
    start = opt_int(req.params, "start") or 0
    limit = opt_int(req.params, "limit")
    limit = 50 if limit is None else limit
    lines = list(task.lines)
    chosen = lines[start : start + limit] if limit else lines[start:]
    return [{"n": start + i + 1, "t": text} for i, text in enumerate(chosen)]


@ROUTES.add("DELETE", "/nodes/{node}/tasks/{upid}")
def task_stop(api: Api, req: Request) -> None:
    task = _task_or_400(api, req)
    if task.status == "running":
        task.log("received interrupt")  # the worker notices nothing; PVE would SIGTERM it
    return None


@ROUTES.add("GET", "/nodes/{node}/tasks")
def task_list(api: Api, req: Request) -> list[dict[str, Any]]:
    params = req.params
    source = params.get("source", "archive")
    vmid = params.get("vmid")
    typefilter = params.get("typefilter")
    userfilter = params.get("userfilter")
    only_errors = flag(params, "errors")
    may_audit = api.perms.has(req.who, f"/nodes/{api.state.node}", ["Sys.Audit"])
    selected = []
    for task in sorted(api.state.tasks.values(), key=lambda t: (t.starttime, t.pid), reverse=True):
        if task.node != params["node"]:
            continue
        if not may_audit and task.user.split("!")[0] != req.who.userid:
            continue
        if source == "active" and task.status != "running":
            continue
        if source == "archive" and task.status == "running":
            continue
        if vmid is not None and task.id != str(vmid):
            continue
        if typefilter and task.type != typefilter:
            continue
        if userfilter and userfilter not in task.user:
            continue
        if only_errors and task.exitstatus in (None, "OK"):
            continue
        selected.append(task.list_entry())
    start = opt_int(params, "start") or 0
    limit = opt_int(params, "limit") or 50
    return selected[start : start + limit]
