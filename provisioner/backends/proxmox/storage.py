"""Can the template's disks be cloned the way the site file asks? Read before anything is touched.

Linked clones (`backend.full_clone: false`, the default) need a storage that can clone a base volume. What each
storage type can do is pve-storage's `volume_has_feature(…, 'clone', …)` for a template's (base) volume:

- lvmthin, zfspool, zfs (over iSCSI), rbd: any base volume;
- dir, nfs, cifs, glusterfs, cephfs (file storages): a qcow2, raw or vmdk base file (the clone is a qcow2 overlay);
- btrfs: also subvolumes;
- lvm (thick), iscsi, iscsidirect: never. qemu-server then refuses the clone with
  `Linked clone feature is not supported for '<volume>' (<disk>)`.

A full clone copies every disk, to `backend.storage` when set: that storage must exist on the node, be enabled
and active, hold VM images, and have room for one copy of the template's disks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provisioner.backends.proxmox.client import PveClient, PveError
from provisioner.errors import InputError
from provisioner.site.model import ProxmoxSettings

DRIVE_KEY = re.compile(r"^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$")
FILE_STORAGES = frozenset({"dir", "nfs", "cifs", "glusterfs", "cephfs"})
# storage type -> formats of a base volume it can make a linked clone of (None: every format)
LINKED_CLONE_FORMATS: dict[str, frozenset[str] | None] = {
    **{kind: frozenset({"qcow2", "raw", "vmdk"}) for kind in FILE_STORAGES},
    "btrfs": frozenset({"qcow2", "raw", "vmdk", "subvol"}),
    "lvmthin": None,
    "zfspool": None,
    "zfs": None,
    "rbd": None,
    "lvm": frozenset(),
    "iscsi": frozenset(),
    "iscsidirect": frozenset(),
}
LINKED_CAPABLE = "lvmthin, zfspool, rbd, or a qcow2/raw file on dir, nfs or cifs"
_SIZE = re.compile(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class TemplateDisk:
    key: str  # scsi0, efidisk0...
    volume: str  # local-lvm:base-9000-disk-0
    storage: str | None  # None: a path, not a storage volume
    volname: str
    size: int | None  # bytes, from size=
    copied: bool  # cloud-init and TPM state are always copied, never linked

    @property
    def is_base(self) -> bool:
        return self.volname.rsplit("/", 1)[-1].startswith("base-")

    def format_on(self, storage_type: str) -> str:
        if storage_type in FILE_STORAGES or storage_type == "btrfs":
            name = self.volname.rsplit("/", 1)[-1]
            if "." in name:
                return name.rsplit(".", 1)[1]
            return "subvol" if name.startswith(("subvol-", "basevol-")) else "raw"
        return "raw"


def template_disks(config: dict[str, Any]) -> list[TemplateDisk]:
    """The template's disks as qemu-server clones them: CD-ROMs are copied as configuration, not cloned."""
    disks = []
    for key in sorted(config):
        if not DRIVE_KEY.match(key):
            continue
        volume, _, options = str(config[key]).partition(",")
        if "media=cdrom" in options.split(",") and "cloudinit" not in volume:
            continue
        if volume in ("", "none"):
            continue
        storage, sep, volname = volume.partition(":")
        if not sep or volume.startswith("/"):
            storage, volname = "", volume
        size = _SIZE.search(options)
        disks.append(
            TemplateDisk(
                key,
                volume,
                storage or None,
                volname,
                int(float(size.group(1)) * _UNITS[size.group(2)]) if size else None,
                "cloudinit" in volname or key == "tpmstate0",
            )
        )
    return disks


def linked_clone_problem(disk: TemplateDisk, storage_type: str | None) -> str | None:
    """Why this disk cannot be linked-cloned; None when it can, or when the storage type is unknown here (a
    third-party plugin: Proxmox answers for itself)."""
    if disk.copied:
        return None
    if disk.storage is None:
        return "is a path, not a volume on a Proxmox storage"
    if storage_type is None or storage_type not in LINKED_CLONE_FORMATS:
        return None
    formats = LINKED_CLONE_FORMATS[storage_type]
    if formats is not None and not formats:
        return f"is on storage '{disk.storage}' of type '{storage_type}', which cannot make linked clones"
    if not disk.is_base:
        return f"is not a base volume ('{disk.volname}'); only a template's base volumes can be linked-cloned"
    fmt = disk.format_on(storage_type)
    if formats is not None and fmt not in formats:
        return f"is a {fmt} volume on storage '{disk.storage}' of type '{storage_type}', which cannot link-clone it"
    return None


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


def check_clone_storage(client: PveClient, settings: ProxmoxSettings, template: dict[str, Any], where: str) -> None:
    """Raise InputError when the clone the site file asks for cannot be made on this node's storages. `where` is
    `<site file>: backend`."""
    node = settings.node
    try:
        listed = client.get(f"nodes/{node}/storage") or []
    except PveError as exc:
        if exc.status in (403, 501):
            return  # nothing to judge by; Proxmox answers the clone itself
        raise
    storages = {str(s.get("storage")): s for s in listed}
    for_images = sorted(
        name
        for name, s in storages.items()
        if "images" in str(s.get("content", "")).split(",") and _flag(s, "enabled") and _flag(s, "active")
    )
    suggestion = ", ".join(for_images) if for_images else f"none on node {node} holds VM images"
    disks = template_disks(template)
    if not settings.full_clone:
        for disk in disks:
            found = storages.get(disk.storage or "")
            kind = str(found.get("type")) if found else None
            problem = linked_clone_problem(disk, kind)
            if problem is not None:
                raise InputError(
                    f"{where}.full_clone: false makes linked clones of template {settings.template}, but its disk "
                    f"{disk.key} ({disk.volume}) {problem} (Proxmox refuses: Linked clone feature is not supported "
                    f"for '{disk.volume}' ({disk.key})). Set `full_clone: true` and `storage: <storage>` in "
                    f"backend, with a storage holding VM images on node {node} ({suggestion}); or move the "
                    f"template's disks to a storage that can make linked clones ({LINKED_CAPABLE})"
                )
        return
    targets: dict[str, str] = {}
    if settings.storage:
        targets["storage"] = settings.storage
    for size, sized in settings.sizes.items():
        if sized.storage:
            targets[f"sizes.{size}.storage"] = sized.storage
    for key, storage in targets.items():
        _check_full_clone_target(settings, storages, disks, storage, f"{where}.{key}", suggestion)


def _check_full_clone_target(
    settings: ProxmoxSettings,
    storages: dict[str, dict[str, Any]],
    disks: list[TemplateDisk],
    storage: str,
    where: str,
    suggestion: str,
) -> None:
    node = settings.node
    target = storages.get(storage)
    problem = None
    if target is None:
        problem = (
            "is not available there (not defined, restricted to other nodes, or the token lacks "
            f"Datastore.AllocateSpace on /storage/{storage})"
        )
    elif not _flag(target, "enabled"):
        problem = "is disabled"
    elif not _flag(target, "active"):
        problem = "is not active (its device or server cannot be reached)"
    elif "images" not in str(target.get("content", "")).split(","):
        problem = f"does not hold VM images (content: {target.get('content') or 'none'})"
    else:
        need = sum(d.size or 0 for d in disks)
        avail = target.get("avail")
        if need and isinstance(avail, int | float) and avail < need:
            problem = (
                f"has {_gib(int(avail))} free; a full clone of template {settings.template} needs up to "
                f"{_gib(need)} per VM"
            )
    if problem is not None:
        raise InputError(
            f"{where}: the full clones go to storage '{storage}' on node {node}, which {problem}; allowed: {suggestion}"
        )


def boot_disk(config: dict[str, Any]) -> TemplateDisk | None:
    """The disk the template boots from: the first disk of `boot: order=…`, else the legacy `bootdisk`, else its
    first disk; never the cloud-init drive or a CD-ROM."""
    disks = {d.key: d for d in template_disks(config) if not d.copied}
    boot = str(config.get("boot") or "")
    order = boot.partition("order=")[2].split(",", 1)[0] if "order=" in boot else ""
    for key in [*order.split(";"), str(config.get("bootdisk") or "")]:
        if key in disks:
            return disks[key]
    return next(iter(disks.values()), None)


def check_disk_sizes(settings: ProxmoxSettings, template: dict[str, Any], where: str) -> None:
    """Proxmox only grows a disk (`shrinking disks is not supported`): a size's disk_gb below the template's boot
    disk is refused before anything is touched."""
    sized = {size: s.disk_gb for size, s in settings.sizes.items() if s.disk_gb is not None}
    if not sized:
        return
    disk = boot_disk(template)
    if disk is None:
        raise InputError(
            f"{where}.sizes: template {settings.template} has no disk to grow to disk_gb; allowed: a template with "
            "a boot disk, or no disk_gb"
        )
    for size, gb in sized.items():
        if disk.size is not None and gb * (1 << 30) < disk.size:
            raise InputError(
                f"{where}.sizes.{size}.disk_gb: {gb} GiB is smaller than the boot disk {disk.key} of template "
                f"{settings.template} ({_gib(disk.size)}); Proxmox only grows disks (shrinking disks is not "
                f"supported); allowed: {-(-disk.size // (1 << 30))} or more"
            )


def _flag(entry: dict[str, Any], key: str) -> bool:
    """`enabled`/`active` as listed; a field the answer leaves out counts as set."""
    value = entry.get(key, 1)
    return value is None or bool(int(value))


def template_volumes(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(drive, volume, storage) of every drive of the template that is a volume on a Proxmox storage, CD-ROMs with
    an ISO or cloud-init volume included: what qemu-server's check_storage_access_clone judges `shared` by."""
    out = []
    for key in sorted(config):
        if not DRIVE_KEY.match(key):
            continue
        volume = str(config[key]).split(",", 1)[0]
        storage, sep, _ = volume.partition(":")
        if sep and storage and not volume.startswith("/"):
            out.append((key, volume, storage))
    return out


def check_other_nodes(
    client: PveClient, settings: ProxmoxSettings, template: dict[str, Any], where: str, storages: list[dict[str, Any]]
) -> None:
    """A clone onto another node than the template's (`target`): qemu-server allows it only when every volume of
    the template is on a shared storage (`can't clone VM to node 'x' (VM uses local storage)`), and a full clone's
    target storage must be shared and enabled on that node (`can't clone to non-shared storage 'x'`). `storages`
    is the cluster's storage configuration (`GET /storage`)."""
    others = [n for n in settings.vm_nodes if n != settings.node]
    if not others:
        return
    config = {str(s.get("storage")): s for s in storages}
    shared = sorted(name for name, s in config.items() if _shared(s) and "images" in str(s.get("content", "")))
    offer = ", ".join(shared) if shared else "none is configured"
    for key, volume, storage in template_volumes(template):
        found = config.get(storage)
        if found is not None and _shared(found):
            continue
        raise InputError(
            f"{where}.nodes: VMs on node {others[0]} are cloned from template {settings.template} on node "
            f"{settings.node} with the clone's `target`, which Proxmox allows only when every disk of the template is "
            f"on shared storage; its drive {key} ({volume}) is on storage '{storage}', which is not shared (Proxmox "
            f"refuses: can't clone VM to node '{others[0]}' (VM uses local storage)). Move the template's disks to a "
            f"shared storage (shared storages with VM images: {offer}), or list only node {settings.node} in "
            "backend.nodes"
        )
    if not settings.full_clone:
        return
    targets: list[tuple[str, str]] = []
    if settings.storage:
        targets.append(("storage", settings.storage))
    targets += [(f"sizes.{size}.storage", s.storage) for size, s in settings.sizes.items() if s.storage]
    for key, storage in targets:
        found = config.get(storage)
        if found is None:
            continue  # the check of the template's node names what is missing
        if not _shared(found):
            raise InputError(
                f"{where}.{key}: full clones onto node {others[0]} go to storage '{storage}', which is not shared "
                f"(Proxmox refuses: can't clone to non-shared storage '{storage}'); allowed: a shared storage "
                f"({offer})"
            )
        allowed = [n for n in str(found.get("nodes") or "").split(",") if n]
        missing = [n for n in others if allowed and n not in allowed]
        if missing:
            raise InputError(
                f"{where}.{key}: storage '{storage}' is not available on node {missing[0]} (its `nodes` are "
                f"{', '.join(allowed)}); allowed: a shared storage on every node of backend.nodes, or add the node "
                "to the storage's nodes"
            )


def _shared(entry: dict[str, Any]) -> bool:
    return bool(int(entry.get("shared") or 0))
