"""What a storage can do with a volume, as pve-storage's plugins answer `volume_has_feature`, and the volume names
a clone gets.

Per plugin (PVE::Storage::*Plugin), for the features the clone API asks about (`clone` for a linked clone of a
template's base volume, `copy` for a full clone and for cloud-init/TPM drives):

- Plugin.pm (dir, nfs, cifs, glusterfs, cephfs): clone of a qcow2/raw/vmdk *base* file; copy of base/current
  qcow2/raw/vmdk files;
- BTRFSPlugin: clone of base qcow2/raw/vmdk/subvol, current raw; copy of base/current;
- LvmThinPlugin, RBDPlugin: clone of base (and snapshots); copy of base/current;
- ZFSPoolPlugin, ZFSPlugin: clone of base; copy of base/current;
- LVMPlugin: copy of base/current qcow2/raw only, no clone at all;
- ISCSIPlugin, ISCSIDirectPlugin: copy of current only.
"""

from __future__ import annotations

FILE_TYPES = frozenset({"dir", "nfs", "cifs", "glusterfs", "cephfs"})
_FILE_FORMATS = frozenset({"qcow2", "raw", "vmdk"})

# type -> feature -> key ('base' | 'current') -> formats (None: any format)
FEATURES: dict[str, dict[str, dict[str, frozenset[str] | None]]] = {
    **{
        t: {
            "clone": {"base": _FILE_FORMATS},
            "copy": {"base": _FILE_FORMATS, "current": _FILE_FORMATS},
        }
        for t in FILE_TYPES
    },
    "btrfs": {
        "clone": {"base": _FILE_FORMATS | {"subvol"}, "current": frozenset({"raw"})},
        "copy": {"base": _FILE_FORMATS | {"subvol"}, "current": _FILE_FORMATS | {"subvol"}},
    },
    "lvmthin": {"clone": {"base": None}, "copy": {"base": None, "current": None}},
    "rbd": {"clone": {"base": None}, "copy": {"base": None, "current": None}},
    "zfspool": {"clone": {"base": None}, "copy": {"base": None, "current": None}},
    "zfs": {"clone": {"base": None}, "copy": {"base": None, "current": None}},
    "lvm": {"copy": {"base": frozenset({"qcow2", "raw"}), "current": frozenset({"qcow2", "raw"})}},
    "iscsi": {"copy": {"current": None}},
    "iscsidirect": {"copy": {"current": None}},
}


def volume_format(storage_type: str, volname: str) -> str:
    name = volname.rsplit("/", 1)[-1]
    if storage_type in FILE_TYPES or storage_type == "btrfs":
        if "." in name:
            return name.rsplit(".", 1)[1]
        return "subvol"
    return "qcow2" if name.endswith(".qcow2") else "raw"


def is_base(volname: str) -> bool:
    """A template's volume (`base-9000-disk-0`, `9000/base-9000-disk-0.qcow2`); a linked clone's own volume
    (`base-9000-disk-0/vm-101-disk-0`) is not."""
    return volname.rsplit("/", 1)[-1].startswith(("base-", "basevol-"))


def has_feature(storage_type: str, feature: str, volname: str) -> bool:
    """PVE::Storage::volume_has_feature for a volume on a storage of this type (no snapshot)."""
    per_key = FEATURES.get(storage_type, {}).get(feature, {})
    key = "base" if is_base(volname) else "current"
    if key not in per_key:
        return False
    formats = per_key[key]
    return formats is None or volume_format(storage_type, volname) in formats


def new_volname(storage_type: str, source: str, vmid: int, newid: int, index: int, linked: bool) -> str:
    """The clone's volume name: a linked clone names its base (`base-9000-disk-0/vm-101-disk-0`, on file storages
    `9000/base-9000-disk-0.qcow2/101/vm-101-disk-0.qcow2`: always a qcow2 overlay); a full clone gets a volume of
    its own, in the source's format on file storages (raw elsewhere)."""
    if storage_type in FILE_TYPES or storage_type == "btrfs":
        fmt = "qcow2" if linked else volume_format(storage_type, source)
        own = f"{newid}/vm-{newid}-disk-{index}.{fmt}"
        return f"{source}/{own}" if linked else own
    base = source.rsplit("/", 1)[-1].replace(f"vm-{vmid}-", f"base-{vmid}-")
    return f"{base}/vm-{newid}-disk-{index}" if linked else f"vm-{newid}-disk-{index}"
