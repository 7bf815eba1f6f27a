"""A storage's content (pve-storage, PVE::API2::Storage::Content `index`): the guests' disk volumes on it.

Each volume a VM or container config names on the storage is listed once, as `volume_list` gives it: `volid`,
`vmid` (its owner, from the name), `format`, `size` in bytes and `content` `images`. A caller sees a volume only
if `check_volume_access` lets it: `Datastore.Allocate` on the storage, or `Datastore.Audit` there and
`VM.Config.Disk` on the owner. Only disk images are modelled (no ISO, backup or template content).
"""

from __future__ import annotations

import re
from typing import Any

from .api import Api, Request, Routes
from .errors import die
from .storage_model import volume_format
from .vmconfig import DISK_RE

ROUTES = Routes()
OWNER_RE = re.compile(r"(?:^|/)(?:vm|base|basevol|subvol)-(\d+)-")
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
CLOUDINIT_BYTES = 4 << 20  # the size qemu-server allocates for a cloud-init drive


def _size(options: str, volname: str) -> int:
    found = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)", options)
    if found:
        return int(float(found.group(1)) * UNITS.get(found.group(2), 1))
    return CLOUDINIT_BYTES if "cloudinit" in volname else 0


def volumes_on(api: Api, storage: str) -> list[dict[str, Any]]:
    """Every volume of the storage that a guest config names, each once, sorted by volid."""
    store = api.state.storages[storage]
    found: dict[str, dict[str, Any]] = {}
    guests = [*api.state.vms.values(), *api.state.containers.values()]
    for guest in guests:
        for key, value in guest.config.items():
            if not (DISK_RE.match(key) or key in ("efidisk0", "tpmstate0", "rootfs") or key.startswith("mp")):
                continue
            volume, _, options = str(value).partition(",")
            sid, sep, volname = volume.partition(":")
            if not sep or sid != storage or volume in found:
                continue
            owner = OWNER_RE.findall(volname)
            entry: dict[str, Any] = {
                "volid": volume,
                "format": volume_format(store.type, volname),
                "size": _size(options, volname),
                "content": "images",
            }
            if owner:
                entry["vmid"] = int(owner[-1])
            found[volume] = entry
    return [found[v] for v in sorted(found)]


@ROUTES.add("GET", "/nodes/{node}/storage/{storage}/content")
def content(api: Api, req: Request) -> list[dict[str, Any]]:
    storage = str(req.params["storage"])
    store = api.state.storages.get(storage)
    if store is None or not store.on(str(req.params["node"])):
        raise die(f"storage '{storage}' does not exist")
    wanted = req.params.get("content")
    if wanted is not None and str(wanted) != "images":
        return []
    vmid = req.params.get("vmid")
    listed = []
    for entry in volumes_on(api, storage):
        if vmid is not None and entry.get("vmid") != int(vmid):
            continue
        allocate = api.perms.has(req.who, f"/storage/{storage}", ["Datastore.Allocate"])
        owner = entry.get("vmid")
        audit = api.perms.has(req.who, f"/storage/{storage}", ["Datastore.Audit"])
        if allocate or (owner is not None and audit and api.perms.has(req.who, f"/vms/{owner}", ["VM.Config.Disk"])):
            listed.append(entry)
    return listed
