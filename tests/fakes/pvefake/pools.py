"""Resource pools (pve-manager API2/Pool.pm): `/pools` with `poolid` parameter and the deprecated
`/pools/{poolid}` routes. Errors are wrapped the way lock_user_config does: `<op> failed: <why>`."""

from __future__ import annotations

from typing import Any

from .api import Api, Request, Routes
from .cluster import vm_resource
from .common import flag, list_param, opt_str
from .errors import die
from .state import Pool

ROUTES = Routes()


def _pool(api: Api, poolid: str, errmsg: str | None = None) -> Pool:
    pool = api.state.pools.get(poolid)
    if pool is None:
        raise die(f"{errmsg}: pool '{poolid}' does not exist" if errmsg else f"pool '{poolid}' does not exist")
    return pool


def _members(api: Api, pool: Pool, kind: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if kind in (None, "qemu"):
        out += [vm_resource(api, vmid) for vmid in sorted(pool.vms) if vmid in api.state.vms]
    if kind in (None, "storage"):
        for store in sorted(pool.storage):
            out.append(
                {"id": f"storage/{api.state.node}/{store}", "type": "storage", "storage": store, "node": api.state.node}
            )
    return out


@ROUTES.add("GET", "/pools")
def list_pools(api: Api, req: Request) -> list[dict[str, Any]]:
    poolid = opt_str(req.params, "poolid")
    if poolid is not None:
        pool = _pool(api, poolid)
        api.perms.check(req.who, f"/pool/{poolid}", ["Pool.Audit"])
        entry: dict[str, Any] = {"poolid": poolid, "members": _members(api, pool, opt_str(req.params, "type"))}
        if pool.comment:
            entry["comment"] = pool.comment
        return [entry]
    out = []
    for pid in sorted(api.state.pools):
        if api.perms.has(req.who, f"/pool/{pid}", ["Pool.Audit"]):
            entry = {"poolid": pid}
            if api.state.pools[pid].comment:
                entry["comment"] = api.state.pools[pid].comment
            out.append(entry)
    return out


@ROUTES.add("GET", "/pools/{poolid}")
def get_pool(api: Api, req: Request) -> dict[str, Any]:
    pool = _pool(api, req.params["poolid"])
    out: dict[str, Any] = {"members": _members(api, pool, opt_str(req.params, "type"))}
    if pool.comment:
        out["comment"] = pool.comment
    return out


@ROUTES.add("POST", "/pools")
def create_pool(api: Api, req: Request) -> None:
    errmsg = "create pool failed"
    poolid = str(req.params["poolid"])
    if poolid in api.state.pools:
        raise die(f"{errmsg}: pool '{poolid}' already exists")
    parent = poolid.rpartition("/")[0]
    if parent and parent not in api.state.pools:
        raise die(f"{errmsg}: parent '{parent}' does not exist")
    api.state.pools[poolid] = Pool(poolid, comment=str(req.params.get("comment") or ""))


def _update(api: Api, req: Request) -> None:
    errmsg = "update pools failed"
    params = req.params
    pool = _pool(api, str(params["poolid"]), errmsg)
    remove = flag(params, "delete")
    allow_move = flag(params, "allow-move")
    vms = [int(v) for v in list_param(params, "vms")]
    stores = list_param(params, "storage")
    # verify everything first so a refused request changes nothing
    for vmid in vms:
        api.perms.check_modify(req.who, f"/vms/{vmid}")
        current = api.state.pool_of(vmid)
        if remove:
            if vmid not in pool.vms:
                raise die(f"{errmsg}: VM {vmid} is not a pool member")
        else:
            if vmid in pool.vms:
                raise die(f"{errmsg}: VM {vmid} is already a pool member")
            if current is not None:
                if not allow_move:
                    raise die(f"{errmsg}: VM {vmid} belongs already to pool '{current}' and 'allow-move' is not set")
                api.perms.check(req.who, f"/pool/{current}", ["Pool.Allocate"])
            if vmid not in api.state.vms:
                raise die(f"{errmsg}: VM {vmid} does not exist")
    for store in stores:
        api.perms.check_modify(req.who, f"/storage/{store}")
        if remove and store not in pool.storage:
            raise die(f"{errmsg}: storage '{store}' is not a pool member")
        if not remove and store in pool.storage:
            raise die(f"{errmsg}: storage '{store}' is already a pool member")
        if not remove and store not in api.state.storages:
            raise die(f"{errmsg}: storage '{store}' does not exist")
    if params.get("comment") is not None:
        pool.comment = str(params["comment"])
    for vmid in vms:
        if remove:
            pool.vms.discard(vmid)
            continue
        for other in api.state.pools.values():
            other.vms.discard(vmid)
        pool.vms.add(vmid)
    for store in stores:
        (pool.storage.discard if remove else pool.storage.add)(store)


@ROUTES.add("PUT", "/pools")
def update_pool(api: Api, req: Request) -> None:
    _update(api, req)


@ROUTES.add("PUT", "/pools/{poolid}")
def update_pool_deprecated(api: Api, req: Request) -> None:
    _update(api, req)


def _delete(api: Api, poolid: str) -> None:
    errmsg = "delete pool failed"
    pool = _pool(api, poolid, errmsg)
    for vmid in sorted(pool.vms):
        if vmid in api.state.vms:  # stale members of destroyed guests are ignored
            raise die(f"{errmsg}: pool '{poolid}' is not empty (contains VM {vmid})")
    for store in sorted(pool.storage):
        if store in api.state.storages:
            raise die(f"{errmsg}: pool '{poolid}' is not empty (contains storage '{store}')")
    for child in sorted(api.state.pools):
        if child.startswith(poolid + "/"):
            raise die(f"{errmsg}: pool '{poolid}' is not empty (contains child pool '{child}')")
    del api.state.pools[poolid]
    for key in [k for k in api.state.acls if k.path == f"/pool/{poolid}"]:
        del api.state.acls[key]


@ROUTES.add("DELETE", "/pools")
def delete_pool(api: Api, req: Request) -> None:
    _delete(api, str(req.params["poolid"]))


@ROUTES.add("DELETE", "/pools/{poolid}")
def delete_pool_deprecated(api: Api, req: Request) -> None:
    _delete(api, str(req.params["poolid"]))
