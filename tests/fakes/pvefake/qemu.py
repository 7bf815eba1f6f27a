"""QEMU guests: list, create, clone, config, power, destroy, cloud-init, guest agent.

Semantics follow qemu-server's API2/Qemu.pm: only pre-fork checks answer HTTP errors (missing
config, `VM is locked (...)`, target exists, pool missing, storage for linked clones, protection,
running on destroy); everything the worker does (template start, already running, missing bridge,
vlan on a vnet) fails the task, visible only in its exitstatus.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote

from . import ha
from .api import Api, Request, Routes
from .common import flag, list_param, opt_int, opt_str
from .errors import ApiError, TaskError, die, param_error
from .faults import lock_timeout_message
from .qemu_ops import allocate_volume
from .realize import AgentError
from .sdn_model import bridge_exists, running_vnet_bridges, vnet_zone
from .state import IDLE_COUNTERS, Vm
from .storage_model import has_feature, new_volname
from .tasks import Task
from .vmconfig import (
    CLOUDINIT_KEYS,
    DISK_RE,
    IPCONFIG_RE,
    NET_RE,
    PASSWORD_MASK,
    agent_enabled,
    config_permission,
    is_hotpluggable,
    max_disk,
    memory_mib,
    nics,
    normalize_tags,
    parse_net,
    valid_ssh_keys,
    vcpus,
    vm_info,
    with_mac,
)

ROUTES = Routes()
# Parameters of the config call that steer the update instead of being config keys.
CONTROL_KEYS = frozenset({"node", "vmid", "digest", "delete", "revert", "skiplock", "force", "background_delay"})
_INT_KEYS = frozenset(
    {"cores", "sockets", "vcpus", "onboot", "template", "protection", "balloon", "numa", "acpi", "kvm"}
)


# -- lookups and shared checks --------------------------------------------------------------------


def config_missing(api: Api, vmid: int | str) -> ApiError:
    return die(f"Configuration file 'nodes/{api.state.node}/qemu-server/{vmid}.conf' does not exist")


def get_vm(api: Api, vmid: int | str) -> Vm:
    vm = api.state.vms.get(int(vmid))
    if vm is None:
        raise config_missing(api, vmid)
    return vm


def check_lock(vm: Vm) -> None:
    if vm.lock:
        raise die(f"VM is locked ({vm.lock})")


def maybe_lock_timeout(api: Api, vmid: int) -> None:
    if api.faults.roll(api.faults.lock_timeout_rate):
        raise die(lock_timeout_message(vmid))


def require_root_for_skiplock(req: Request) -> None:
    if flag(req.params, "skiplock") and not req.who.is_root:
        raise ApiError(403, "Permission check failed (Only root may use this option.)")


def check_bridge_access(api: Api, req: Request, net_value: str) -> None:
    """pve-guest-common's check_vnet_access: SDN.Use on /sdn/zones/<zone>/<bridge>/<tag> for a tag, on each of the
    trunks' VLANs, else on /sdn/zones/<zone>/<bridge> (an ACL on the bridge reaches its VLANs when it propagates);
    plain bridges live in zone `localnetwork`."""
    net = parse_net(net_value)
    bridge = net.get("bridge")
    if not bridge:
        return
    zone = vnet_zone(api.state, bridge) or vnet_zone(api.state, bridge, running=False) or "localnetwork"
    path = f"/sdn/zones/{zone}/{bridge}"
    vlans = ([net["tag"]] if net.get("tag") else []) + [t for t in str(net.get("trunks") or "").split(";") if t]
    for vlan in vlans:
        api.perms.check(req.who, f"{path}/{vlan}", ["SDN.Use"])
    if not vlans:
        api.perms.check(req.who, path, ["SDN.Use"])


def typed_value(api: Api, key: str, value: str) -> Any:
    """GET config answers numbers for integer/boolean properties, strings otherwise."""
    prop = None
    if api.schema is not None:
        op = api.schema.operation("PUT", "/nodes/{node}/qemu/{vmid}/config")
        prop = api.schema.property_schema(op, key) if op else None
    kind = prop.get("type") if prop else ("integer" if key in _INT_KEYS else "string")
    try:
        if kind in ("integer", "boolean"):
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    return value


def effective_config(vm: Vm, current: bool) -> dict[str, str]:
    config = dict(vm.config)
    if not current:
        config.update(vm.pending)
        for key in vm.pending_delete:
            config.pop(key, None)
    return config


def render_config(api: Api, vm: Vm, current: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(effective_config(vm, current).items()):
        out[key] = PASSWORD_MASK if key == "cipassword" else typed_value(api, key, value)
    out["digest"] = vm.digest()
    return out


def new_vm_from_params(api: Api, vmid: int, params: dict[str, Any]) -> dict[str, str]:
    config: dict[str, str] = {}
    for key, value in params.items():
        if key in CONTROL_KEYS or key in ("pool", "start", "storage", "unique", "archive", "live-restore"):
            continue
        text = str(value)
        if DISK_RE.match(key) or key == "efidisk0":
            m = re.fullmatch(r"([^:,]+):(\d+(?:\.\d+)?)(,.*)?", text)
            if m:  # `local-lvm:32` allocates a new 32 GiB volume
                index = sum(1 for k in config if DISK_RE.match(k))
                text = f"{m.group(1)}:vm-{vmid}-disk-{index},size={m.group(2)}G{m.group(3) or ''}"
        config[key] = text
    for key in list(config):
        if NET_RE.match(key):
            config[key] = with_mac(config[key], api.rng)
    config.setdefault("smbios1", f"uuid={uuid.UUID(int=api.rng.getrandbits(128), version=4)}")
    config.setdefault("vmgenid", str(uuid.UUID(int=api.rng.getrandbits(128), version=4)))
    return config


# -- listing and status ---------------------------------------------------------------------------


def vm_summary(api: Api, vm: Vm) -> dict[str, Any]:
    cfg = vm.config
    running = vm.status == "running"
    out: dict[str, Any] = {
        "vmid": vm.vmid,
        "name": vm.name,
        "status": vm.status,
        "cpus": vcpus(cfg),
        "maxmem": memory_mib(cfg) << 20,
        "maxdisk": max_disk(cfg),
        "mem": (memory_mib(cfg) << 19) if running else 0,
        "cpu": 0.01 if running else 0,
        "uptime": int(time.time() - vm.started_at) if running and vm.started_at else 0,
        **IDLE_COUNTERS,
    }
    if running and vm.pid:
        out["pid"] = vm.pid
    if vm.is_template:
        out["template"] = 1
    return {**out, **vm.marks()}


@ROUTES.add("GET", "/nodes/{node}/qemu")
def list_vms(api: Api, req: Request) -> list[dict[str, Any]]:
    return [
        vm_summary(api, vm)
        for vmid, vm in sorted(api.state.vms.items())
        if api.state.node_of(vm) == req.params["node"] and api.perms.has(req.who, f"/vms/{vmid}", ["VM.Audit"])
    ]


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}")
def vm_index(api: Api, req: Request) -> list[dict[str, str]]:
    get_vm(api, req.params["vmid"])
    names = ("config", "pending", "status", "cloudinit", "firewall", "agent", "clone", "template", "rrd")
    return [{"subdir": n} for n in names]


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/status")
def status_index(api: Api, req: Request) -> list[dict[str, str]]:
    get_vm(api, req.params["vmid"])
    return [{"subdir": n} for n in ("current", "start", "stop", "shutdown", "reboot", "reset")]


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def status_current(api: Api, req: Request) -> dict[str, Any]:
    vm = get_vm(api, req.params["vmid"])
    out = vm_summary(api, vm)
    out["qmpstatus"] = vm.status
    out["ha"] = ha.status_of(api, vm.vmid)
    out["agent"] = 1 if agent_enabled(vm.config) else 0
    if vm.status == "running":
        out["running-machine"] = "pc-i440fx-9.0+pve0"
        out["running-qemu"] = "9.0.2"
    return out


# -- create / clone -------------------------------------------------------------------------------


def _check_pool_exists(api: Api, pool: str | None) -> None:
    if pool is not None and pool not in api.state.pools:
        raise die(f"pool '{pool}' does not exist")


def _finish_new_vm(api: Api, vmid: int, pool: str | None) -> None:
    with api.state.lock:
        vm = api.state.vms.get(vmid)
        if vm is None:
            raise TaskError(f"VM {vmid} vanished")
        vm.config.pop("lock", None)
        if pool and pool in api.state.pools:
            api.state.pools[pool].vms.add(vmid)


def _drop_new_vm(api: Api, vmid: int) -> None:
    with api.state.lock:
        api.state.vms.pop(vmid, None)


@ROUTES.add("POST", "/nodes/{node}/qemu")
def create_vm(api: Api, req: Request) -> str:
    vmid = int(req.params["vmid"])
    pool = opt_str(req.params, "pool")
    _check_pool_exists(api, pool)
    if api.state.vmid_taken(vmid):
        raise die(f"unable to create VM {vmid}: config file already exists")
    config = new_vm_from_params(api, vmid, req.params)
    config["lock"] = "create"
    api.state.vms[vmid] = Vm(vmid, config)
    start = flag(req.params, "start")

    def work(task: Task) -> None:
        _finish_new_vm(api, vmid, pool)
        if start:
            start_worker(api, vmid, False)(task)

    node = req.params["node"]
    return api.tasks.spawn(
        "qmcreate", str(vmid), req.who.auth_id, work, on_fail=lambda t, m: _drop_new_vm(api, vmid), node=node
    )


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/clone")
def clone_vm(api: Api, req: Request) -> str:
    params = req.params
    vmid, newid = int(params["vmid"]), int(params["newid"])
    pool = opt_str(params, "pool")
    storage = opt_str(params, "storage")
    # qemu-server: a target that is the local node (or 'localhost') is no target; another must be a member
    target = opt_str(params, "target")
    if target in (str(params["node"]), "localhost"):
        target = None
    _check_pool_exists(api, pool)
    if target is not None and target != api.state.node and target not in api.state.other_nodes:
        raise die(f"no such cluster node '{target}'")
    if storage is not None:
        _check_storage_for_images(api, storage, str(params["node"]))
        if target is not None:
            _check_storage_for_images(api, storage, target)
            if not api.state.storages[storage].shared:
                raise die(f"can't clone to non-shared storage '{storage}'")
    source = get_vm(api, vmid)
    maybe_lock_timeout(api, vmid)
    check_lock(source)
    if params.get("snapname") is not None:
        raise die(f"snapshot '{params['snapname']}' does not exist")
    full = flag(params, "full", default=not source.is_template)
    if not full:
        if storage is not None:
            raise die("parameter 'storage' not allowed for linked clones")
        if params.get("format") is not None:
            raise die("parameter 'format' not allowed for linked clones")
    # qemu-server's check_storage_access_clone: Datastore.AllocateSpace on the storage of each disk that is not a
    # CD-ROM (the target storage when one is given); a CD-ROM (the cloud-init drive) is not checked
    for key, value in sorted(source.config.items()):
        volume = value.split(",", 1)[0]
        if (DISK_RE.match(key) or key in ("efidisk0", "tpmstate0")) and "media=cdrom" not in value and ":" in volume:
            api.perms.check(req.who, f"/storage/{storage or volume.split(':', 1)[0]}", ["Datastore.AllocateSpace"])
    for _, net in nics(source.config):
        if net.get("bridge"):
            check_bridge_access(
                api, req, f"virtio,bridge={net['bridge']}" + (f",tag={net['tag']}" if net.get("tag") else "")
            )
    if target is not None and not _all_shared(api, source):
        raise die(f"can't clone VM to node '{target}' (VM uses local storage)")
    if api.state.vmid_taken(newid):
        raise die(f"unable to create VM {newid}: config file already exists")
    _check_clone_features(api, source, full)

    config: dict[str, str] = {}
    disks: list[str] = []
    for key, value in source.config.items():
        if key in ("template", "lock", "parent", "snapstate", "vmstate") or key.startswith("unused"):
            continue
        if NET_RE.match(key):
            value = with_mac(value, api.rng, force_new=True)
        elif DISK_RE.match(key) or key == "efidisk0":
            value = _clone_volume(api, key, value, vmid, newid, len(disks), full, storage)
            if "media=cdrom" not in value:
                disks.append(key)
        config[key] = value
    config["name"] = opt_str(params, "name") or f"Copy-of-VM-{source.name}"
    if params.get("description") is not None:
        config["description"] = str(params["description"])
    config["smbios1"] = f"uuid={uuid.UUID(int=api.rng.getrandbits(128), version=4)}"
    config["vmgenid"] = str(uuid.UUID(int=api.rng.getrandbits(128), version=4))
    config["lock"] = "clone"
    api.state.vms[newid] = Vm(newid, config, node=source.node)

    def work(task: Task) -> None:
        kind = "full" if full else "linked"
        for key in disks:
            task.log(f"create {kind} clone of drive {key} ({source.config.get(key, '').split(',')[0]})")
        if target is not None:  # the config file is renamed into the target node's folder once the copy is done
            with api.state.lock:
                made = api.state.vms.get(newid)
                if made is not None:
                    made.node = None if target == api.state.node else target
        _finish_new_vm(api, newid, pool)

    def undo(task: Task, message: str) -> None:
        _drop_new_vm(api, newid)  # PVE removes the half-created config and disks

    node = req.params["node"]
    return api.tasks.spawn(
        "qmclone", str(vmid), req.who.auth_id, work, on_fail=undo, error_prefix="clone failed: ", node=node
    )


def _all_shared(api: Api, source: Vm) -> bool:
    """qemu-server's check_storage_access_clone `$sharedvm`: every drive with a volume (disks and CD-ROMs, an ISO
    or the cloud-init drive included; not `none` or `cdrom`) is on a storage configured `shared`."""
    for key, value in source.config.items():
        if not (DISK_RE.match(key) or key in ("efidisk0", "tpmstate0")):
            continue
        volume = value.split(",", 1)[0]
        if volume in ("", "none", "cdrom") or ":" not in volume or volume.startswith("/"):
            continue
        store = api.state.storages.get(volume.split(":", 1)[0])
        if store is None or not store.shared:
            return False
    return True


def _check_storage_for_images(api: Api, storage: str, node: str) -> None:
    """PVE::Storage::storage_check_enabled on the clone's target storage, then its content types."""
    store = api.state.storages.get(storage)
    if store is None:
        raise die(f"storage '{storage}' does not exist")
    if store.disable:
        raise die(f"storage '{storage}' is disabled")
    if not store.on(node):
        raise die(f"storage '{storage}' is not available on node '{node}'")
    if "images" not in store.content.split(","):
        raise param_error({"storage": f"storage '{storage}' does not support vm images"})


def _check_clone_features(api: Api, source: Vm, full: bool) -> None:
    """qemu-server's clone checks before it forks: each disk must support `copy` (full clone; cloud-init and TPM
    state drives always) or `clone` (linked clone) on its storage, else `Full|Linked clone feature is not
    supported for '<volume>' (<disk>)`."""
    for key, value in sorted(source.config.items()):
        if not (DISK_RE.match(key) or key in ("efidisk0", "tpmstate0")):
            continue
        volume, _, options = value.partition(",")
        cloudinit = "cloudinit" in volume
        if ("media=cdrom" in options.split(",") and not cloudinit) or volume in ("", "none"):
            continue
        store_id, sep, volname = volume.partition(":")
        store = api.state.storages.get(store_id) if sep and not volume.startswith("/") else None
        if sep and store is None and not volume.startswith("/"):
            raise die(f"storage '{store_id}' does not exist")
        copy = full or cloudinit or key == "tpmstate0"
        feature = "copy" if copy else "clone"
        if store is None or not has_feature(store.type, feature, volname):
            raise die(f"{'Full' if copy else 'Linked'} clone feature is not supported for '{volume}' ({key})")


def _clone_volume(
    api: Api, key: str, value: str, vmid: int, newid: int, index: int, full: bool, storage: str | None
) -> str:
    volume, _, options = value.partition(",")
    store, _, volname = volume.partition(":")
    if "media=cdrom" in options:
        if "cloudinit" in volname:
            return f"{store}:vm-{newid}-cloudinit,{options}"
        return value
    if not volname:
        return value
    target_store = storage or store
    found = api.state.storages.get(target_store)
    kind = found.type if found is not None else "lvmthin"
    new_name = new_volname(kind, volname, vmid, newid, index, linked=not full)
    return f"{target_store}:{new_name}" + (f",{options}" if options else "")


# -- config ---------------------------------------------------------------------------------------


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/config")
def get_config(api: Api, req: Request) -> dict[str, Any]:
    vm = get_vm(api, req.params["vmid"])
    if req.params.get("snapshot") is not None:
        raise die(f"snapshot '{req.params['snapshot']}' does not exist")
    return render_config(api, vm, current=flag(req.params, "current"))


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/pending")
def get_pending(api: Api, req: Request) -> list[dict[str, Any]]:
    vm = get_vm(api, req.params["vmid"])
    keys = sorted(set(vm.config) | set(vm.pending) | vm.pending_delete)
    out = []
    for key in keys:
        entry: dict[str, Any] = {"key": key}
        if key in vm.config:
            entry["value"] = PASSWORD_MASK if key == "cipassword" else typed_value(api, key, vm.config[key])
        if key in vm.pending:
            entry["pending"] = PASSWORD_MASK if key == "cipassword" else typed_value(api, key, vm.pending[key])
        if key in vm.pending_delete:
            entry["delete"] = 1
        out.append(entry)
    return out


def _prepare_changes(api: Api, req: Request, vm: Vm) -> tuple[dict[str, str], list[str]]:
    """Verify an update like update_vm_api does before it writes anything; returns (set, delete)."""
    params = req.params
    require_root_for_skiplock(req)
    changes = {k: str(v) for k, v in params.items() if k not in CONTROL_KEYS}
    deletes = list_param(params, "delete")
    reverts = list_param(params, "revert")
    if not changes and not deletes and not reverts:
        raise die("no options specified")
    for key in deletes:
        if key in changes:
            raise param_error({"delete": f"you can't use '-{key}' and -delete {key}' at the same time"})
    for key in [*changes, *deletes]:
        priv = config_permission(key)
        if key == "startup":
            api.perms.check(req.who, "/", ["Sys.Modify"])
        if priv is not None:
            api.perms.check(req.who, f"/vms/{vm.vmid}", [priv])
        if NET_RE.match(key) and key in changes:
            check_bridge_access(api, req, changes[key])
    digest = opt_str(params, "digest")
    if digest and digest != vm.digest():
        raise die("checksum mismatch (file change by other user?)")
    if not flag(params, "skiplock"):
        check_lock(vm)
    if "sshkeys" in changes and not valid_ssh_keys(unquote(changes["sshkeys"])):
        raise die("SSH public key validation error")
    for key, value in list(changes.items()):
        if NET_RE.match(key):
            changes[key] = with_mac(value, api.rng)
        elif key == "tags":
            changes[key] = normalize_tags(value)
        elif DISK_RE.match(key):  # `STORAGE:SIZE` / `STORAGE:cloudinit`: a new volume (qemu_ops.py)
            changes[key] = allocate_volume(api, vm.vmid, key, value)
        elif key == "cipassword":
            # qemu-server stores a crypt() hash; only the mask is ever shown
            changes[key] = "$5$pvefake$" + hashlib.sha256(value.encode()).hexdigest()
    for key in reverts:
        vm.pending.pop(key, None)
        vm.pending_delete.discard(key)
    return changes, deletes


def _apply(vm: Vm, changes: dict[str, str], deletes: list[str]) -> None:
    """Write changes: a stopped VM takes everything, a running one only what hotplugs."""
    running = vm.status == "running"
    for key, value in changes.items():
        if running and not is_hotpluggable(key):
            vm.pending[key] = value
            vm.pending_delete.discard(key)
        else:
            vm.config[key] = value
            vm.pending.pop(key, None)
    for key in deletes:
        if running and not is_hotpluggable(key):
            vm.pending_delete.add(key)
            vm.pending.pop(key, None)
        else:
            vm.config.pop(key, None)
            vm.pending.pop(key, None)


def apply_pending(vm: Vm) -> None:
    vm.config.update(vm.pending)
    for key in vm.pending_delete:
        vm.config.pop(key, None)
    vm.pending.clear()
    vm.pending_delete.clear()


def _effective_change(vm: Vm, changes: dict[str, str], deletes: list[str]) -> bool:
    current = effective_config(vm, current=False)
    return any(current.get(k) != v for k, v in changes.items()) or any(k in current for k in deletes)


@ROUTES.add("PUT", "/nodes/{node}/qemu/{vmid}/config")
def put_config(api: Api, req: Request) -> None:
    vm = get_vm(api, req.params["vmid"])
    maybe_lock_timeout(api, vm.vmid)
    changes, deletes = _prepare_changes(api, req, vm)
    _apply(vm, changes, deletes)


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/config")
def post_config(api: Api, req: Request) -> str | None:
    vm = get_vm(api, req.params["vmid"])
    maybe_lock_timeout(api, vm.vmid)
    changes, deletes = _prepare_changes(api, req, vm)
    if not _effective_change(vm, changes, deletes):
        return None  # nothing pending: qemu-server returns without forking a worker
    # Written as pending now (GET config shows it), applied by the qmconfig worker.
    vm.pending.update(changes)
    vm.pending_delete.update(deletes)
    vmid = vm.vmid

    def work(task: Task) -> None:
        with api.state.lock:
            target = api.state.vms.get(vmid)
            if target is None:
                raise TaskError(str(config_missing(api, vmid)))
            staged = {k: target.pending.pop(k) for k in list(changes) if k in target.pending}
            dropped = [k for k in deletes if k in target.pending_delete]
            for key in dropped:
                target.pending_delete.discard(key)
            _apply(target, staged, dropped)
            for key in staged:
                task.log(f"update VM {vmid}: -{key} {PASSWORD_MASK if key == 'cipassword' else staged[key]}")

    return api.tasks.spawn("qmconfig", str(vmid), req.who.auth_id, work, node=req.params["node"])


# -- power ----------------------------------------------------------------------------------------


def start_worker(api: Api, vmid: int, skiplock: bool):
    def work(task: Task) -> None:
        with api.state.lock:
            vm = api.state.vms.get(vmid)
            if vm is None:
                raise TaskError(str(config_missing(api, vmid)))
            if vm.is_template:
                raise TaskError("you can't start a vm if it's a template")
            if vm.lock and not skiplock:
                raise TaskError(f"VM is locked ({vm.lock})")
            if vm.status == "running":
                raise TaskError(f"VM {vmid} already running")
            vnets = running_vnet_bridges(api.state)
            candidate = dict(vm.config)
            candidate.update(vm.pending)
            for key in vm.pending_delete:
                candidate.pop(key, None)
            for _, net in nics(candidate):
                bridge = net.get("bridge", "")
                if not bridge_exists(api.state, bridge):
                    raise TaskError(f"bridge '{bridge}' does not exist")
                if bridge in vnets and net.get("tag"):
                    vnet = api.state.sdn.running.vnets[bridge]
                    if str(vnet.get("vlanaware", "0")) != "1":
                        raise TaskError(f"vm vlans are not allowed on vnet {bridge}")
            apply_pending(vm)
            vm.cloudinit_generated = _cloudinit_snapshot(vm)
            info = vm_info(vmid, vm.config)
            vm.status = "running"  # reserve: a concurrent start now fails with `already running`
            vm.started_at = time.time()
            vm.pid = 10000 + vmid
        try:
            api.realizer.vm_started(info)
        except Exception:
            with api.state.lock:
                if vmid in api.state.vms:
                    api.state.vms[vmid].status = "stopped"
                    api.state.vms[vmid].pid = None
            raise

    return work


def stop_worker(api: Api, vmid: int, skiplock: bool, must_run: bool):
    def work(task: Task) -> None:
        with api.state.lock:
            vm = api.state.vms.get(vmid)
            if vm is None:
                raise TaskError(str(config_missing(api, vmid)))
            if vm.lock and not skiplock and vm.lock not in ("backup",):
                raise TaskError(f"VM is locked ({vm.lock})")
            if vm.status != "running":
                if must_run:
                    raise TaskError(f"VM {vmid} not running")
                return
            vm.status = "stopped"
            vm.pid = None
            vm.started_at = None
        api.realizer.vm_stopped(vmid)

    return work


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def start_vm(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    require_root_for_skiplock(req)
    node = str(req.params["node"])
    if ha.managed(api, vm.vmid) and req.params.get("stateuri") is None:
        return ha.request_start(api, vm.vmid, req.who.auth_id, node)
    skiplock = flag(req.params, "skiplock")
    return api.tasks.spawn("qmstart", str(vm.vmid), req.who.auth_id, start_worker(api, vm.vmid, skiplock), node=node)


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def stop_vm(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    require_root_for_skiplock(req)
    if ha.managed(api, vm.vmid) and req.params.get("migratedfrom") is None:
        if flag(req.params, "overrule-shutdown"):
            raise param_error({"overrule-shutdown": "Not applicable for HA resources."})
        return ha.request_stop(api, vm.vmid, req.who.auth_id, str(req.params["node"]), 0)
    work = stop_worker(api, vm.vmid, flag(req.params, "skiplock"), must_run=False)
    return api.tasks.spawn("qmstop", str(vm.vmid), req.who.auth_id, work, node=req.params["node"])


SHUTDOWN_DEFAULT_TIMEOUT = 60  # qemu-server's wait when the call names none


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown")
def shutdown_vm(api: Api, req: Request) -> str:
    """The guest is asked to power down. One that ignores it (faults.ignore_shutdown) keeps running for the whole
    timeout; then the task fails as qemu-server's does, or with forceStop the VM is stopped."""
    vm = get_vm(api, req.params["vmid"])
    require_root_for_skiplock(req)
    node = str(req.params["node"])
    if ha.managed(api, vm.vmid):
        wait = int(req.params.get("timeout", SHUTDOWN_DEFAULT_TIMEOUT))
        return ha.request_stop(api, vm.vmid, req.who.auth_id, node, wait)
    stop = stop_worker(api, vm.vmid, flag(req.params, "skiplock"), must_run=False)
    if vm.vmid not in api.faults.ignore_shutdown or vm.status != "running":
        return api.tasks.spawn("qmshutdown", str(vm.vmid), req.who.auth_id, stop, node=node)
    timeout = int(req.params.get("timeout", SHUTDOWN_DEFAULT_TIMEOUT))
    force = flag(req.params, "forceStop")

    def ignored(task: Task) -> None:
        if not force:
            raise TaskError("VM quit/powerdown failed - got timeout")
        stop(task)

    return api.tasks.spawn("qmshutdown", str(vm.vmid), req.who.auth_id, ignored, seconds=float(timeout), node=node)


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/status/reboot")
def reboot_vm(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    if vm.status != "running":
        raise die(f"VM {vm.vmid} not running")
    stop = stop_worker(api, vm.vmid, False, must_run=True)
    start = start_worker(api, vm.vmid, False)

    def work(task: Task) -> None:
        stop(task)
        start(task)

    return api.tasks.spawn("qmreboot", str(vm.vmid), req.who.auth_id, work, node=req.params["node"])


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/status/reset")
def reset_vm(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    if vm.status != "running":
        raise die(f"VM {vm.vmid} not running")
    return api.tasks.spawn(
        "qmreset", str(vm.vmid), req.who.auth_id, lambda task: None, seconds=0.0, node=req.params["node"]
    )


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/template")
def make_template(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    check_lock(vm)
    if vm.status == "running":
        raise die("you can't convert a VM to template if VM is running")
    vmid = vm.vmid

    def work(task: Task) -> None:
        with api.state.lock:
            target = api.state.vms.get(vmid)
            if target is None:
                raise TaskError(str(config_missing(api, vmid)))
            target.config["template"] = "1"

    return api.tasks.spawn("qmtemplate", str(vmid), req.who.auth_id, work, node=req.params["node"])


# -- destroy --------------------------------------------------------------------------------------


@ROUTES.add("DELETE", "/nodes/{node}/qemu/{vmid}")
def destroy_vm(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    require_root_for_skiplock(req)
    vmid = vm.vmid
    if vm.config.get("protection") == "1":
        raise die(f"can't remove VM {vmid} - protection mode enabled")
    purge = flag(req.params, "purge")
    if api.state.ha_of(vmid) is not None and not purge:
        raise die(f"unable to remove VM {vmid} - used in HA resources and purge parameter not set.")
    if vm.status == "running":
        raise die(f"VM {vmid} is running - destroy failed")
    skiplock = flag(req.params, "skiplock")

    def work(task: Task) -> None:
        with api.state.lock:
            target = api.state.vms.get(vmid)
            if target is None:
                raise TaskError(str(config_missing(api, vmid)))
            if target.lock and not skiplock:
                raise TaskError(f"VM is locked ({target.lock})")
            if target.status == "running":
                raise TaskError(f"VM {vmid} is running - destroy failed")
            for key in sorted(target.config):
                if DISK_RE.match(key) and "media=cdrom" not in target.config[key]:
                    task.log(f'  Logical volume "vm-{vmid}-{key}" successfully removed.')
            del api.state.vms[vmid]
            # qemu-server always drops the guest's ACLs, pool membership and firewall config
            for pool in api.state.pools.values():
                pool.vms.discard(vmid)
            for key in [k for k in api.state.acls if k.path == f"/vms/{vmid}"]:
                del api.state.acls[key]
            api.state.firewall.vm_options.pop(vmid, None)
            api.state.firewall.vm_rules.pop(vmid, None)
            if purge and api.state.ha.pop(f"vm:{vmid}", None) is not None:
                task.log(f"NOTE: removed VM {vmid} from HA resource configuration.")
        api.realizer.vm_destroyed(vmid)

    return api.tasks.spawn("qmdestroy", str(vmid), req.who.auth_id, work, node=req.params["node"])


# -- cloud-init -----------------------------------------------------------------------------------


def _cloudinit_snapshot(vm: Vm) -> dict[str, str]:
    return {k: v for k, v in vm.config.items() if k in CLOUDINIT_KEYS or IPCONFIG_RE.match(k) or NET_RE.match(k)}


def _has_cloudinit_drive(vm: Vm) -> bool:
    return any(DISK_RE.match(k) and "cloudinit" in v for k, v in vm.config.items())


@ROUTES.add("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit")
def regenerate_cloudinit(api: Api, req: Request) -> None:
    vm = get_vm(api, req.params["vmid"])
    check_lock(vm)
    if not _has_cloudinit_drive(vm):
        raise die("no cloudinit drive found")
    vm.cloudinit_generated = _cloudinit_snapshot(vm)


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/cloudinit")
def cloudinit_pending(api: Api, req: Request) -> list[dict[str, Any]]:
    vm = get_vm(api, req.params["vmid"])
    generated = vm.cloudinit_generated or {}
    now = _cloudinit_snapshot(vm)
    out = []
    for key in sorted(set(generated) | set(now)):
        entry: dict[str, Any] = {"key": key}
        if key in generated:
            entry["value"] = PASSWORD_MASK if key == "cipassword" else generated[key]
        if key not in now:
            entry["delete"] = 1
        elif generated.get(key) != now[key]:
            entry["pending"] = PASSWORD_MASK if key == "cipassword" else now[key]
        out.append(entry)
    return out


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/cloudinit/dump")
def cloudinit_dump(api: Api, req: Request) -> str:
    vm = get_vm(api, req.params["vmid"])
    kind = req.params["type"]
    cfg = vm.config
    if kind == "meta":
        return f"instance-id: {hashlib.sha1(repr(sorted(_cloudinit_snapshot(vm).items())).encode()).hexdigest()}\n"
    if kind == "user":
        lines = ["#cloud-config", f"hostname: {vm.name}", "manage_etc_hosts: true", f"fqdn: {vm.name}"]
        if cfg.get("ciuser"):
            lines.append(f"user: {cfg['ciuser']}")
        if cfg.get("cipassword"):
            lines.append(f"password: {cfg['cipassword']}")
        keys = [k for k in unquote(cfg.get("sshkeys", "")).split("\n") if k.strip()]
        if keys:
            lines.append("ssh_authorized_keys:")
            lines += [f"  - {k}" for k in keys]
        lines += ["chpasswd:", "  expire: False", "users:", "  - default", "package_upgrade: true"]
        return "\n".join(lines) + "\n"
    lines = ["version: 1", "config:"]
    for index, net in nics(cfg):
        lines += [
            "    - type: physical",
            f"      name: eth{index}",
            f"      mac_address: '{net.get('macaddr', '').lower()}'",
            "      subnets:",
        ]
        for part in cfg.get(f"ipconfig{index}", "").split(","):
            key, _, value = part.partition("=")
            if key == "ip" and value == "dhcp":
                lines.append("      - type: dhcp4")
            elif key == "ip" and value:
                lines += ["      - type: static", f"        address: '{value}'"]
            elif key == "gw" and value:
                lines.append(f"        gateway: '{value}'")
    if cfg.get("nameserver") or cfg.get("searchdomain"):
        lines.append("    - type: nameserver")
        if cfg.get("nameserver"):
            lines += ["      address:"] + [f"      - '{ns}'" for ns in cfg["nameserver"].split()]
        if cfg.get("searchdomain"):
            lines += ["      search:"] + [f"      - '{d}'" for d in cfg["searchdomain"].split()]
    return "\n".join(lines) + "\n"


# -- guest agent ----------------------------------------------------------------------------------


def _agent_ready(api: Api, req: Request) -> Vm:
    with api.state.lock:
        vm = get_vm(api, req.params["vmid"])
        configured = agent_enabled(vm.config)
        running = vm.status == "running"
    if not configured:
        raise die("No QEMU guest agent configured")
    if not running:
        raise die(f"VM {vm.vmid} is not running")
    if not api.realizer.agent_running(vm.vmid):
        raise die("QEMU guest agent is not running")
    return vm


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/agent/ping", locked=False)
def agent_ping(api: Api, req: Request) -> dict[str, Any]:
    _agent_ready(api, req)
    return {"result": {}}


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read", locked=False)
def agent_file_read(api: Api, req: Request) -> dict[str, Any]:
    vm = _agent_ready(api, req)
    try:
        content = api.realizer.agent_file_read(vm.vmid, str(req.params["file"]))
    except AgentError as exc:
        raise die(f"Agent error: {exc}") from exc
    offset = opt_int(req.params, "offset") or 0
    count = opt_int(req.params, "count") or 16777216
    chunk = content[offset : offset + count]
    out: dict[str, Any] = {"content": chunk}
    if offset + count < len(content):
        out["truncated"] = True
    return out


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name", locked=False)
def agent_host_name(api: Api, req: Request) -> dict[str, Any]:
    vm = _agent_ready(api, req)
    return {"result": {"host-name": vm.name}}


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/agent/info", locked=False)
def agent_info(api: Api, req: Request) -> dict[str, Any]:
    _agent_ready(api, req)
    return {"result": {"version": "8.2.2", "supported_commands": [{"name": "guest-ping", "enabled": True}]}}


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", locked=False)
def agent_interfaces(api: Api, req: Request) -> dict[str, Any]:
    vm = _agent_ready(api, req)
    with api.state.lock:
        cfg = dict(vm.config)
    result: list[dict[str, Any]] = [
        {
            "name": "lo",
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}],
        }
    ]
    for index, net in nics(cfg):
        addrs = []
        for part in cfg.get(f"ipconfig{index}", "").split(","):
            key, _, value = part.partition("=")
            if key == "ip" and "/" in value:
                ip, _, prefix = value.partition("/")
                addrs.append({"ip-address-type": "ipv4", "ip-address": ip, "prefix": int(prefix)})
        result.append(
            {"name": f"eth{index}", "hardware-address": net.get("macaddr", "").lower(), "ip-addresses": addrs}
        )
    return {"result": result}
