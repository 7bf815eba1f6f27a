"""SDN (pve-network): zones, vnets and subnets with pending/running configs, apply, 9.x lock.

Writes only change the pending config (`/etc/pve/sdn/*.cfg`). `PUT /cluster/sdn` copies pending to
running synchronously and returns a `reloadnetworkall` UPID. As upstream (PVE::API2::Network::SDN, reload), that
worker only starts a network reload on each node and warns about a node it cannot reach; its `OK` says nothing
about the networks. Each node's reload brings its network up `reload_seconds` later, or fails
(`reload_errors`); `GET /nodes/{node}/sdn/zones` and `.../zones/{zone}/content` report pending, available or error
per node. `GET ...?running=1` shows the running config, `?pending=1` annotates objects with `state`
new/changed/deleted and a `pending` dict.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .api import Api, Request, Routes
from .common import flag, list_param, opt_str
from .errors import die, param_error
from .sdn_model import node_status, running_vnets_info
from .state import SdnConfig, config_digest
from .tasks import Task

ROUTES = Routes()
LOCK_FILE_LINE = "at /usr/share/perl5/PVE/Network/SDN.pm line 305."
SECTION = {"zones": "zone", "vnets": "vnet", "subnets": "subnet"}
NOT_STORED = frozenset({"lock-token", "digest", "delete", "release-lock", "running", "pending"})


def _v9(api: Api) -> bool:
    return not api.state.version.startswith("8")


def check_sdn_lock(api: Api, req: Request, errmsg: str) -> None:
    """PVE 9.x: with the global lock held, every SDN write needs the matching `lock-token`."""
    held = api.state.sdn.lock_token
    if held is not None and opt_str(req.params, "lock-token") != held:
        raise die(f"{errmsg}: invalid lock token provided! {LOCK_FILE_LINE}")


def _encode(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _stored(params: dict[str, Any], skip: set[str], api: Api | None = None, create: str = "") -> dict[str, Any]:
    """The section's values as SectionConfig reads them back: check_value returns booleans, integers and numbers
    as numbers (`$value + 0`), so `tag`, `mtu`, `vlanaware`, `snat` come back as JSON numbers, not strings.
    `create` is the section's create call, whose parameters hold every property type of the section."""
    stored = {k: v for k, v in params.items() if k not in NOT_STORED and k not in skip}
    schema = api.schema if api is not None else None
    op = schema.operation("POST", create) if schema is not None and create else None
    for key, value in stored.items():
        prop = schema.property_schema(op, key) if schema is not None and op is not None else None
        kind = prop.get("type") if prop else NUMERIC.get(key)
        if kind in ("integer", "boolean") and isinstance(value, str):
            stored[key] = int(value)
        elif kind == "number" and isinstance(value, str):
            stored[key] = float(value) if "." in value else int(value)
    return stored


# Without the schema: the numeric properties of pve-network's zone, vnet and subnet plugins the fake stores.
NUMERIC = {k: "integer" for k in ("tag", "mtu", "vlanaware", "isolate-ports", "snat", "advertise-subnets",
                                   "bridge-disable-mac-learning", "disable-arp-nd-suppression",
                                   "exitnodes-local-routing", "vrf-vxlan", "vxlan-port")}  # fmt: skip


def section_digest(section: dict[str, dict[str, Any]]) -> str:
    """SectionConfig's digest is the whole file's: every object of a section lists the same one, and an update
    with another is refused (assert_if_modified)."""
    return config_digest({oid: repr(sorted(obj.items())) for oid, obj in section.items()})


def _dhcp_ranges(value: Any) -> list[dict[str, str]]:
    """Subnets.pm get_dhcp_ranges: each `start-address=..,end-address=..` parsed; always a list."""
    ranges = value if isinstance(value, list) else [value] if value else []
    return [dict(p.split("=", 1) for p in str(r).split(",") if "=" in p) for r in ranges]


def pending_view(running: dict[str, dict[str, Any]], pending: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """pve-network's pending_config: running values at top level, changes under `pending`."""
    out: dict[str, dict[str, Any]] = {}
    for oid in sorted(running):
        robj, cobj = running[oid], pending.get(oid)
        entry = out.setdefault(oid, {})
        for key in sorted(robj):
            entry[key] = robj[key]
            if cobj is None:
                entry["state"] = "deleted"
            elif key not in cobj:
                entry.setdefault("pending", {})[key] = "deleted"
                entry["state"] = "changed"
            elif _encode(robj[key]) != _encode(cobj[key]):
                entry["state"] = "changed"
        if entry.get("state") and "pending" not in entry:
            entry["pending"] = {}
    for oid in sorted(pending):
        robj, cobj = running.get(oid, {}), pending[oid]
        entry = out.setdefault(oid, {})
        for key in sorted(cobj):
            value = _encode(cobj[key])
            if key in ("type", "vnet"):
                entry[key] = value
            elif not robj:
                entry.setdefault("pending", {})[key] = value
                entry["state"] = "new"
            elif key not in robj or value != _encode(robj[key]):
                entry.setdefault("pending", {})[key] = value
                entry["state"] = "changed"
    return out


def _listing(api: Api, req: Request, section: str, ids: list[str] | None = None) -> list[dict[str, Any]]:
    sdn = api.state.sdn
    running: dict[str, dict[str, Any]] = getattr(sdn.running, section)
    pending: dict[str, dict[str, Any]] = getattr(sdn.pending, section)
    if flag(req.params, "pending"):
        source = pending_view(running, pending)
    elif flag(req.params, "running"):
        source = running
    else:
        source = pending
    key = SECTION[section]
    digest = section_digest(running if flag(req.params, "running") else pending)
    out = []
    for oid in sorted(source):
        if ids is not None and oid not in ids:
            continue
        obj = dict(source[oid])
        obj[key] = oid
        if section == "subnets":  # sdn_subnets_config adds the id; the API lists it as `subnet` too
            obj["id"] = oid
            obj["dhcp-range"] = _dhcp_ranges(obj.get("dhcp-range"))
        obj.setdefault("digest", digest)
        out.append(obj)
    return out


def _one(api: Api, req: Request, section: str, oid: str, missing: str) -> dict[str, Any]:
    found = _listing(api, req, section, [oid])
    if not found:
        raise die(missing)
    return found[0]


# -- index / apply / lock -------------------------------------------------------------------------


@ROUTES.add("GET", "/cluster/sdn")
def sdn_index(api: Api, req: Request) -> list[dict[str, str]]:
    names = ["zones", "vnets", "controllers", "ipams", "dns"] + (["fabrics", "lock", "rollback"] if _v9(api) else [])
    return [{"id": n} for n in names]


@ROUTES.add("PUT", "/cluster/sdn")
def apply(api: Api, req: Request) -> str:
    sdn = api.state.sdn
    check_sdn_lock(api, req, "could not acquire lock for SDN config")
    sdn.running = sdn.pending.copy()  # commit_config happens before the worker is forked
    sdn.apply_count += 1
    sdn.version += 1
    # extract_param ignores the schema default: the lock is released only when asked explicitly
    if req.params.get("release-lock") is not None and flag(req.params, "release-lock"):
        sdn.lock_token = None
    running, version = sdn.running.copy(), sdn.version

    def work(task: Task) -> None:
        with api.state.lock:
            nodes = [api.state.node, *sorted(api.state.other_nodes)]
            offline = {n for n, status in api.state.other_nodes.items() if status != "online"}
        for node in nodes:
            if node in offline:
                task.warn(f"{node}: unable to reload network config: no route to host")
                continue
            task.log(f"{node}: reloading network config")
            _reload_later(api, node, version, running)

    return api.tasks.spawn("reloadnetworkall", "", req.who.auth_id, work)


def _reload_later(api: Api, node: str, version: int, config: SdnConfig) -> None:
    """The node's own reload task: after `reload_seconds` its network holds `config`, unless a newer apply's
    reload got there first, or its reload fails (the interfaces stay as they were; the status says error)."""

    def reload() -> None:
        with api.state.lock:
            sdn = api.state.sdn
            have = sdn.loaded.get(node)
            if have is not None and have[0] > version:
                return
            failure = sdn.reload_errors.get(node)
            kept = config if failure is None else sdn.loaded_config(node)
            sdn.loaded[node] = (version, kept, failure)
            vnets = running_vnets_info(api.state) if node == api.state.node and failure is None else None
        if vnets is not None:
            api.realizer.sdn_applied(vnets)

    delay = api.state.sdn.reload_seconds
    if delay <= 0:
        reload()
    else:
        timer = threading.Timer(delay, reload)
        timer.daemon = True
        timer.start()


@ROUTES.add("POST", "/cluster/sdn/lock")
def take_lock(api: Api, req: Request) -> str:
    sdn = api.state.sdn
    if sdn.lock_token is not None:
        raise die("could not acquire lock for SDN config: global lock already exists")
    if not flag(req.params, "allow-pending") and sdn.pending != sdn.running:
        raise die("could not acquire lock for SDN config: there are pending changes")
    sdn.lock_token = str(uuid.UUID(int=api.rng.getrandbits(128), version=4))
    return sdn.lock_token


@ROUTES.add("DELETE", "/cluster/sdn/lock")
def release_lock(api: Api, req: Request) -> None:
    sdn = api.state.sdn
    if not flag(req.params, "force"):
        check_sdn_lock(api, req, "could not release lock for SDN config")
    sdn.lock_token = None


@ROUTES.add("POST", "/cluster/sdn/rollback")
def rollback(api: Api, req: Request) -> None:
    sdn = api.state.sdn
    check_sdn_lock(api, req, "could not rollback SDN config")
    sdn.pending = sdn.running.copy()
    if req.params.get("release-lock") is not None and flag(req.params, "release-lock"):
        sdn.lock_token = None


# -- zones ----------------------------------------------------------------------------------------


@ROUTES.add("GET", "/cluster/sdn/zones")
def list_zones(api: Api, req: Request) -> list[dict[str, Any]]:
    kind = req.params.get("type")
    return [
        z
        for z in _listing(api, req, "zones")
        if (kind is None or z.get("type") == kind)
        and api.perms.has(req.who, f"/sdn/zones/{z['zone']}", ["SDN.Audit", "SDN.Allocate"], any_of=True)
    ]


@ROUTES.add("GET", "/cluster/sdn/zones/{zone}")
def get_zone(api: Api, req: Request) -> dict[str, Any]:
    zone = req.params["zone"]
    return _one(api, req, "zones", zone, f"sdn '{zone}' does not exist")


def _check_zone_options(zone: dict[str, Any]) -> None:
    if zone.get("type") in ("vlan", "qinq") and not zone.get("bridge"):
        raise param_error({"bridge": "property is missing and it is not optional"})


@ROUTES.add("POST", "/cluster/sdn/zones")
def create_zone(api: Api, req: Request) -> None:
    errmsg = "create sdn zone object failed"
    check_sdn_lock(api, req, errmsg)
    zone_id = req.params["zone"]
    zones = api.state.sdn.pending.zones
    if zone_id in zones:
        raise die(f"{errmsg}: sdn zone object ID '{zone_id}' already defined")
    zone = _stored(req.params, {"zone"}, api, "/cluster/sdn/zones")
    _check_zone_options(zone)
    zones[zone_id] = zone


@ROUTES.add("PUT", "/cluster/sdn/zones/{zone}")
def update_zone(api: Api, req: Request) -> None:
    errmsg = "update sdn zone object failed"
    check_sdn_lock(api, req, errmsg)
    zone_id = req.params["zone"]
    zone = api.state.sdn.pending.zones.get(zone_id)
    if zone is None:
        raise die(f"{errmsg}: sdn '{zone_id}' does not exist")
    digest = opt_str(req.params, "digest")
    if digest and digest != section_digest(api.state.sdn.pending.zones):
        raise die(f"{errmsg}: detected modified configuration - file changed by other user? Try again.")
    updated = dict(zone)
    for key in list_param(req.params, "delete"):
        updated.pop(key, None)
    updated.update(_stored(req.params, {"zone"}, api, "/cluster/sdn/zones"))
    _check_zone_options(updated)
    api.state.sdn.pending.zones[zone_id] = updated


@ROUTES.add("DELETE", "/cluster/sdn/zones/{zone}")
def delete_zone(api: Api, req: Request) -> None:
    errmsg = "delete sdn zone object failed"
    check_sdn_lock(api, req, errmsg)
    zone_id = req.params["zone"]
    pending = api.state.sdn.pending
    if zone_id not in pending.zones:
        raise die(f"{errmsg}: sdn '{zone_id}' does not exist")
    for vnet_id, vnet in sorted(pending.vnets.items()):
        if vnet.get("zone") == zone_id:
            raise die(f"{errmsg}: zone {zone_id} is used by vnet {vnet_id}")
    del pending.zones[zone_id]


# -- vnets ----------------------------------------------------------------------------------------


def _check_vnet(config: SdnConfig, vnet_id: str, vnet: dict[str, Any]) -> None:
    zone = config.zones.get(str(vnet.get("zone")))
    if zone is None:
        raise die(f"sdn '{vnet.get('zone')}' does not exist")
    ztype = zone.get("type")
    tag = vnet.get("tag")
    if ztype in ("vlan", "qinq"):
        if tag is None:
            raise param_error({"tag": "missing vlan tag"})
        if int(tag) > 4096:
            raise param_error({"tag": "vlan tag max value is 4096"})
        for other_id, other in sorted(config.vnets.items()):
            if other_id != vnet_id and other.get("zone") == vnet.get("zone") and str(other.get("tag")) == str(tag):
                raise param_error({"tag": f"tag {tag} already exist in vnet {other_id}"})
    elif ztype == "simple" and tag is not None:
        raise param_error({"tag": "vlan tag is not allowed on simple zone"})
    elif ztype in ("vxlan", "evpn") and tag is None:
        raise param_error({"tag": "missing vxlan tag"})


def _vnet_allowed(api: Api, req: Request, zone: str, vnet: str, privs: list[str]) -> None:
    api.perms.check(req.who, f"/sdn/zones/{zone}/{vnet}", privs, any_of=True)


@ROUTES.add("GET", "/cluster/sdn/vnets")
def list_vnets(api: Api, req: Request) -> list[dict[str, Any]]:
    return [
        v
        for v in _listing(api, req, "vnets")
        if api.perms.has(req.who, f"/sdn/zones/{v.get('zone', '')}/{v['vnet']}", ["SDN.Audit", "SDN.Allocate"], True)
    ]


@ROUTES.add("GET", "/cluster/sdn/vnets/{vnet}")
def get_vnet(api: Api, req: Request) -> dict[str, Any]:
    vnet_id = req.params["vnet"]
    found = _one(api, req, "vnets", vnet_id, f"sdn vnet '{vnet_id}' does not exist")
    _vnet_allowed(api, req, str(found.get("zone", "")), vnet_id, ["SDN.Audit", "SDN.Allocate"])
    return found


@ROUTES.add("POST", "/cluster/sdn/vnets")
def create_vnet(api: Api, req: Request) -> None:
    errmsg = "create sdn vnet object failed"
    check_sdn_lock(api, req, errmsg)
    vnet_id = req.params["vnet"]
    pending = api.state.sdn.pending
    if vnet_id in pending.vnets:
        raise die(f"{errmsg}: sdn vnet object ID '{vnet_id}' already defined")
    if vnet_id in pending.zones:
        raise die(f"{errmsg}: vnet ID '{vnet_id}' is already used by a zone")
    vnet = _stored(req.params, {"vnet"}, api, "/cluster/sdn/vnets")
    vnet["type"] = "vnet"
    _check_vnet(pending, vnet_id, vnet)
    pending.vnets[vnet_id] = vnet


@ROUTES.add("PUT", "/cluster/sdn/vnets/{vnet}")
def update_vnet(api: Api, req: Request) -> None:
    errmsg = "update sdn vnet object failed"
    check_sdn_lock(api, req, errmsg)
    vnet_id = req.params["vnet"]
    pending = api.state.sdn.pending
    vnet = pending.vnets.get(vnet_id)
    if vnet is None:
        raise die(f"{errmsg}: sdn vnet '{vnet_id}' does not exist")
    _vnet_allowed(api, req, str(vnet.get("zone")), vnet_id, ["SDN.Allocate"])
    digest = opt_str(req.params, "digest")
    if digest and digest != section_digest(pending.vnets):
        raise die(f"{errmsg}: detected modified configuration - file changed by other user? Try again.")
    updated = dict(vnet)
    for key in list_param(req.params, "delete"):
        updated.pop(key, None)
    updated.update(_stored(req.params, {"vnet"}, api, "/cluster/sdn/vnets"))
    _check_vnet(pending, vnet_id, updated)
    pending.vnets[vnet_id] = updated


@ROUTES.add("DELETE", "/cluster/sdn/vnets/{vnet}")
def delete_vnet(api: Api, req: Request) -> None:
    errmsg = "delete sdn vnet object failed"
    check_sdn_lock(api, req, errmsg)
    vnet_id = req.params["vnet"]
    pending = api.state.sdn.pending
    vnet = pending.vnets.get(vnet_id)
    if vnet is None:
        raise die(f"{errmsg}: sdn vnet '{vnet_id}' does not exist")
    _vnet_allowed(api, req, str(vnet.get("zone")), vnet_id, ["SDN.Allocate"])
    if any(s.get("vnet") == vnet_id for s in pending.subnets.values()):
        raise param_error({"vnet": "Can't delete vnet if subnets exists"})
    del pending.vnets[vnet_id]


# -- subnets --------------------------------------------------------------------------------------


def _subnet_vnet(api: Api, req: Request, privs: list[str]) -> tuple[str, str]:
    vnet_id = req.params["vnet"]
    vnet = api.state.sdn.pending.vnets.get(vnet_id) or api.state.sdn.running.vnets.get(vnet_id)
    if vnet is None:
        raise die(f"sdn vnet '{vnet_id}' does not exist")
    zone = str(vnet.get("zone"))
    _vnet_allowed(api, req, zone, vnet_id, privs)
    return vnet_id, zone


@ROUTES.add("GET", "/cluster/sdn/vnets/{vnet}/subnets")
def list_subnets(api: Api, req: Request) -> list[dict[str, Any]]:
    vnet_id, _ = _subnet_vnet(api, req, ["SDN.Audit", "SDN.Allocate"])
    return [s for s in _listing(api, req, "subnets") if s.get("vnet") == vnet_id]


@ROUTES.add("GET", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}")
def get_subnet(api: Api, req: Request) -> dict[str, Any]:
    vnet_id, _ = _subnet_vnet(api, req, ["SDN.Audit", "SDN.Allocate"])
    subnet_id = req.params["subnet"]
    found = _one(api, req, "subnets", subnet_id, f"sdn subnet '{subnet_id}' does not exist")
    if found.get("vnet") != vnet_id:
        raise die(f"sdn subnet '{subnet_id}' does not exist")
    return found


@ROUTES.add("POST", "/cluster/sdn/vnets/{vnet}/subnets")
def create_subnet(api: Api, req: Request) -> None:
    errmsg = "create sdn subnet object failed"
    check_sdn_lock(api, req, errmsg)
    vnet_id, zone = _subnet_vnet(api, req, ["SDN.Allocate"])
    cidr = str(req.params["subnet"])
    ip, _, mask = cidr.partition("/")
    subnet_id = f"{zone}-{ip}-{mask}"  # stored (and addressed) as <zone>-<ip>-<mask>
    pending = api.state.sdn.pending
    if subnet_id in pending.subnets:
        raise die(f"{errmsg}: sdn subnet object ID '{subnet_id}' already defined")
    subnet = _stored(req.params, {"subnet"}, api, "/cluster/sdn/vnets/{vnet}/subnets")
    subnet.update({"vnet": vnet_id, "zone": zone, "cidr": cidr, "network": ip, "mask": mask, "type": "subnet"})
    pending.subnets[subnet_id] = subnet


@ROUTES.add("PUT", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}")
def update_subnet(api: Api, req: Request) -> None:
    errmsg = "update sdn subnet object failed"
    check_sdn_lock(api, req, errmsg)
    vnet_id, _ = _subnet_vnet(api, req, ["SDN.Allocate"])
    subnet_id = req.params["subnet"]
    subnet = api.state.sdn.pending.subnets.get(subnet_id)
    if subnet is None or subnet.get("vnet") != vnet_id:
        raise die(f"{errmsg}: sdn subnet '{subnet_id}' does not exist")
    updated = dict(subnet)
    for key in list_param(req.params, "delete"):
        updated.pop(key, None)
    updated.update(_stored(req.params, {"subnet", "vnet"}, api, "/cluster/sdn/vnets/{vnet}/subnets"))
    api.state.sdn.pending.subnets[subnet_id] = updated


@ROUTES.add("DELETE", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}")
def delete_subnet(api: Api, req: Request) -> None:
    errmsg = "delete sdn subnet object failed"
    check_sdn_lock(api, req, errmsg)
    vnet_id, _ = _subnet_vnet(api, req, ["SDN.Allocate"])
    subnet_id = req.params["subnet"]
    subnet = api.state.sdn.pending.subnets.get(subnet_id)
    if subnet is None or subnet.get("vnet") != vnet_id:
        raise die(f"{errmsg}: sdn subnet '{subnet_id}' does not exist")
    del api.state.sdn.pending.subnets[subnet_id]


# -- node view ------------------------------------------------------------------------------------


@ROUTES.add("GET", "/nodes/{node}/sdn/zones")
def node_zones(api: Api, req: Request) -> list[dict[str, Any]]:
    """The running config's zones as this node reports them; only those the caller may audit."""
    zones, _ = node_status(api.state, str(req.params["node"]))
    return [
        {"zone": zone, **status}
        for zone, status in zones.items()
        if api.perms.has(req.who, f"/sdn/zones/{zone}", ["SDN.Audit"])
    ]


@ROUTES.add("GET", "/nodes/{node}/sdn/zones/{zone}/content")
def node_zone_content(api: Api, req: Request) -> list[dict[str, Any]]:
    zone = str(req.params["zone"])
    zones, vnets = node_status(api.state, str(req.params["node"]))
    if zone not in zones:
        raise die(f"sdn zone '{zone}' does not exist")
    running = api.state.sdn.running.vnets
    return [{"vnet": vnet, **status} for vnet, status in vnets.items() if running[vnet].get("zone") == zone]


# -- IPAM (PVE::API2::Network::SDN::Ipams) ----------------------------------------------------------------
# The built-in `pve` IPAM exists on every cluster (ipams.cfg ships it); the fake models no other. Its status lists
# the allocations of zones with DHCP only, and the fake's zones have none: an empty list.
IPAMS = {"pve": {"ipam": "pve", "type": "pve"}}


@ROUTES.add("GET", "/cluster/sdn/ipams")
def list_ipams(api: Api, req: Request) -> list[dict[str, Any]]:
    kind = req.params.get("type")
    return [
        dict(ipam)
        for ipam_id, ipam in sorted(IPAMS.items())
        if api.perms.has(req.who, f"/sdn/ipams/{ipam_id}", ["SDN.Audit", "SDN.Allocate"], True)
        and (kind is None or ipam["type"] == kind)
    ]


@ROUTES.add("GET", "/cluster/sdn/ipams/{ipam}")
def get_ipam(api: Api, req: Request) -> dict[str, Any]:
    ipam = IPAMS.get(str(req.params["ipam"]))
    if ipam is None:
        raise die(f"sdn '{req.params['ipam']}' does not exist")
    return {**ipam, "digest": config_digest(ipam)}


@ROUTES.add("GET", "/cluster/sdn/ipams/{ipam}/status")
def ipam_status(api: Api, req: Request) -> list[dict[str, Any]]:
    if str(req.params["ipam"]) != "pve":
        raise die("Currently only PVE IPAM is supported!")
    return []  # only zones with `dhcp` set are listed, and the fake's zones have no DHCP
