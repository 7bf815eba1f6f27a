"""The storage pool: the base image's parts as volumes, each guest's disk a qcow2 linked clone, its seed ISO.

Uploads go through libvirt streams, so a remote hypervisor (qemu+ssh://) works like the local one. The
libvirt test driver (test:///) keeps volumes in memory and cannot upload: there the volumes stay empty.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from provisioner.backends.libvirt.xmlspec import pool_target, pool_xml, volume_xml
from provisioner.errors import BackendError

CHUNK = 4 * 1024 * 1024


def ensure_pool(conn: libvirt.virConnect, name: str, path: str, say) -> libvirt.virStoragePool:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        say(f"creating storage pool {name} at {path}")
        pool = conn.storagePoolDefineXML(pool_xml(name, path), 0)
        pool.build(0)
        pool.setAutostart(1)
    if not pool.isActive():
        if ET.fromstring(pool.XMLDesc(0)).get("type") == "dir":
            pool.build(0)  # makes the pool's folder again if it was removed (a directory that exists is kept)
        pool.create(0)
    return pool


def find_volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return None


def can_upload(conn: libvirt.virConnect) -> bool:
    return conn.getType() != "TEST"


def import_file(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool, name: str, source: Path, fmt: str, local: bool
) -> str:
    """A volume holding a copy of `source`: copied straight into a local directory pool, else uploaded."""
    target = pool_target(pool.XMLDesc(0))
    if not (local and ET.fromstring(pool.XMLDesc(0)).get("type") == "dir" and target):
        return upload_file(conn, pool, name, source, fmt)
    old = find_volume(pool, name)
    if old is not None:
        old.delete(0)
    partial = Path(target) / f".{name}.partial"
    shutil.copyfile(source, partial)
    partial.rename(Path(target) / name)
    pool.refresh(0)
    volume = pool.storageVolLookupByName(name)
    return volume.path()


def upload_file(conn: libvirt.virConnect, pool: libvirt.virStoragePool, name: str, source: Path, fmt: str) -> str:
    """A volume holding a copy of `source`; a half-uploaded one is replaced."""
    old = find_volume(pool, name)
    if old is not None:
        old.delete(0)
    size = source.stat().st_size
    volume = pool.createXML(volume_xml(name, size, fmt), 0)
    if can_upload(conn):
        stream = conn.newStream(0)
        volume.upload(stream, 0, size, 0)
        with source.open("rb") as handle:
            stream.sendAll(lambda _stream, nbytes, fh: fh.read(min(nbytes, CHUNK)), handle)
        stream.finish()
    return volume.path()


def upload_bytes(conn: libvirt.virConnect, pool: libvirt.virStoragePool, name: str, data: bytes) -> str:
    old = find_volume(pool, name)
    if old is not None:
        old.delete(0)
    volume = pool.createXML(volume_xml(name, len(data), "raw"), 0)
    if can_upload(conn):
        stream = conn.newStream(0)
        volume.upload(stream, 0, len(data), 0)
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            sent += stream.send(bytes(view[sent : sent + CHUNK]))
        stream.finish()
    return volume.path()


def linked_clone(pool: libvirt.virStoragePool, name: str, base: libvirt.virStorageVol) -> str:
    """A qcow2 volume whose backing file is the base disk: created in milliseconds, holds only the guest's writes."""
    old = find_volume(pool, name)
    if old is not None:
        old.delete(0)
    capacity = base.info()[1]
    volume = pool.createXML(volume_xml(name, capacity, "qcow2", backing=base.path()), 0)
    return volume.path()


def delete_path(conn: libvirt.virConnect, path: str) -> bool:
    """Delete the volume at `path` if a pool holds it; False if there is none."""
    try:
        volume = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        return False
    try:
        volume.delete(0)
    except libvirt.libvirtError as exc:
        raise BackendError(f"could not delete volume {path}: {exc}") from exc
    return True


def refresh(pool: libvirt.virStoragePool) -> None:
    if pool.isActive():
        pool.refresh(0)
