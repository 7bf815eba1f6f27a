"""Disk and snapshot operations of qemu-server beside qemu.py: new volumes from `STORAGE:SIZE`, resize, snapshots.

- A drive written as `STORAGE:SIZE` (create or config update) gets a new volume, named as pve-storage's
  find_free_diskname names it (`vm-<vmid>-disk-<N>`, the lowest N no volume of that guest on that storage uses,
  `base-` ones included), and the config keeps `STORAGE:vm-<vmid>-disk-<N>,...,size=<SIZE>G`; `format` is dropped
  once the volume exists (qemu-server's create_disks). `STORAGE:cloudinit` makes `vm-<vmid>-cloudinit`.
- `PUT .../resize` is a `resize` worker (PVE 8.x and 9.x return a UPID): `+N` grows by N, a plain size sets it,
  a smaller one is `shrinking disks is not supported`, a missing drive `disk 'x' does not exist`.
- Snapshots: the list ends with `current` ("You are here!"); `current` and `pending` are reserved names.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .api import Api, Request, Routes
from .common import opt_str, size_bytes
from .errors import TaskError, die
from .state import Vm
from .tasks import Task

ROUTES = Routes()
DRIVE_RE = re.compile(r"^(ide|sata|scsi|virtio)\d+$|^(efidisk|tpmstate)0$")
NEW_VOLUME_RE = re.compile(r"([^:,]+):(\d+(?:\.\d+)?)((?:,.*)?)")
NEW_CLOUDINIT_RE = re.compile(r"([^:,]+):cloudinit((?:,.*)?)")


def _used_disk_numbers(api: Api, store: str, vmid: int) -> set[int]:
    pattern = re.compile(rf"^{re.escape(store)}:(?:.*/)?(?:vm|base)-{vmid}-disk-(\d+)")
    used = set()
    for vm in api.state.vms.values():
        for value in [*vm.config.values(), *vm.pending.values()]:
            match = pattern.match(str(value))
            if match:
                used.add(int(match.group(1)))
    return used


def _drive_text(volume: str, options: str, size: str | None) -> str:
    """print_drive: the volume first, then the options sorted by name (size among them)."""
    parts = dict(p.split("=", 1) for p in options.split(",") if "=" in p)
    parts.pop("format", None)  # create_disks: no longer needed once the volume exists
    if size is not None:
        parts["size"] = size
    return ",".join([volume, *(f"{k}={v}" for k, v in sorted(parts.items()))])


def allocate_volume(api: Api, vmid: int, key: str, value: str) -> str:
    """The drive as written to the config once a `STORAGE:SIZE` or `STORAGE:cloudinit` volume is allocated."""
    if not DRIVE_RE.match(key):
        return value
    cloudinit = NEW_CLOUDINIT_RE.fullmatch(value)
    if cloudinit:
        options = cloudinit.group(2).lstrip(",")
        return _drive_text(f"{cloudinit.group(1)}:vm-{vmid}-cloudinit", f"media=cdrom,{options}", None)
    match = NEW_VOLUME_RE.fullmatch(value)
    if match is None:
        return value
    store, size, options = match.group(1), match.group(2), match.group(3).lstrip(",")
    if store not in api.state.storages:
        raise die(f"storage '{store}' does not exist")
    used = _used_disk_numbers(api, store, vmid)
    number = next(n for n in range(len(used) + 1) if n not in used)
    return _drive_text(f"{store}:vm-{vmid}-disk-{number}", options, f"{size}G")


def _vm(api: Api, req: Request) -> Vm:
    from .qemu import get_vm

    return get_vm(api, req.params["vmid"])


def _format_size(size: int) -> str:
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


@ROUTES.add("PUT", "/nodes/{node}/qemu/{vmid}/resize")
def resize(api: Api, req: Request) -> str:
    vm = _vm(api, req)
    vmid, disk, wanted = vm.vmid, str(req.params["disk"]), str(req.params["size"])
    digest = opt_str(req.params, "digest")

    def work(task: Task) -> None:
        with api.state.lock:
            target = api.state.vms.get(vmid)
            if target is None:
                raise TaskError(f"Configuration file 'nodes/{api.state.node}/qemu-server/{vmid}.conf' does not exist")
            if digest and digest != target.digest():
                raise TaskError("checksum mismatch (file change by other user?)")
            if target.lock and not req.params.get("skiplock"):
                raise TaskError(f"VM is locked ({target.lock})")
            drive = target.config.get(disk)
            if drive is None:
                raise TaskError(f"disk '{disk}' does not exist")
            if "media=cdrom" in drive:
                raise TaskError("you can't resize a cdrom")
            current = re.search(r"(?:^|,)size=([^,]+)", drive)
            size = size_bytes(current.group(1)) if current else 0
            grow = wanted.startswith("+")
            new = size_bytes(wanted.lstrip("+")) + (size if grow else 0)
            if new < size:
                raise TaskError("shrinking disks is not supported")
            if new == size:
                return
            volume, _, options = drive.partition(",")
            target.config[disk] = _drive_text(volume, options, _format_size(new))
            task.log(f"update VM {vmid}: resize --disk {disk} --size {wanted}")

    return api.tasks.spawn("resize", str(vmid), req.who.auth_id, work)


# -- snapshots ------------------------------------------------------------------------------------


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def list_snapshots(api: Api, req: Request) -> list[dict[str, Any]]:
    vm = _vm(api, req)
    out: list[dict[str, Any]] = []
    for name, snap in sorted(vm.snapshots.items()):
        item = {"name": name, "snaptime": snap["snaptime"], "vmstate": snap["vmstate"],
                "description": snap.get("description", "")}  # fmt: skip
        if snap.get("parent"):
            item["parent"] = snap["parent"]
        out.append(item)
    current: dict[str, Any] = {"name": "current", "digest": vm.digest(), "running": int(vm.status == "running"),
                               "description": "You are here!"}  # fmt: skip
    if vm.config.get("parent"):
        current["parent"] = vm.config["parent"]
    return [*out, current]


@ROUTES.add("POST", "/nodes/{node}/qemu/{vmid}/snapshot")
def create_snapshot(api: Api, req: Request) -> str:
    vm = _vm(api, req)
    name = str(req.params["snapname"])
    if name in ("current", "pending"):
        raise die(f"unable to use snapshot name '{name}' (reserved name)")
    vmid = vm.vmid

    def work(task: Task) -> None:
        with api.state.lock:
            target = api.state.vms[vmid]
            if name in target.snapshots:
                raise TaskError(f"snapshot name '{name}' already used")
            if target.lock:
                raise TaskError(f"VM is locked ({target.lock})")
            snap: dict[str, Any] = {"snaptime": int(time.time()), "vmstate": 1 if req.params.get("vmstate") else 0,
                                    "config": dict(target.config)}  # fmt: skip
            if req.params.get("description"):
                snap["description"] = str(req.params["description"])
            if target.config.get("parent"):
                snap["parent"] = target.config["parent"]
            target.snapshots[name] = snap
            target.config["parent"] = name

    return api.tasks.spawn("qmsnapshot", str(vmid), req.who.auth_id, work)


@ROUTES.add("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def snapshot_index(api: Api, req: Request) -> list[dict[str, str]]:
    vm = _vm(api, req)
    if str(req.params["snapname"]) not in vm.snapshots:
        raise die(f"snapshot '{req.params['snapname']}' does not exist")
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@ROUTES.add("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def delete_snapshot(api: Api, req: Request) -> str:
    vm = _vm(api, req)
    name, vmid = str(req.params["snapname"]), vm.vmid

    def work(task: Task) -> None:
        with api.state.lock:
            target = api.state.vms[vmid]
            snap = target.snapshots.pop(name, None)
            if snap is None:
                raise TaskError(f"snapshot '{name}' does not exist")
            for other in target.snapshots.values():  # children now hang from the deleted one's parent
                if other.get("parent") == name:
                    other["parent"] = snap.get("parent")
            if target.config.get("parent") == name:
                if snap.get("parent"):
                    target.config["parent"] = snap["parent"]
                else:
                    target.config.pop("parent", None)

    return api.tasks.spawn("qmdelsnapshot", str(vmid), req.who.auth_id, work)
