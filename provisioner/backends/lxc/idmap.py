"""The user-id mapping of the lab's containers: root inside a container is an unprivileged uid on the host.

Every container maps its ids 0..65535 to host ids 100000..165535 (`lxc.idmap`). The base image is shifted once,
when it is built, so that its files belong to the mapped ids; clones are overlays of that image and every file the
controller seeds into a clone is written with the shifted owner too.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

ID_OFFSET = 100000  # the host uid and gid of a container's root
ID_COUNT = 65536  # ids 0..65535 inside a container
CAPABILITY_XATTR = "security.capability"
_CAP_V2 = 0x02000000
_CAP_V3 = 0x03000000
_CAP_REVISION_MASK = 0xFF000000


def idmap_config() -> list[str]:
    """The container config lines of the mapping."""
    return [f"lxc.idmap = u 0 {ID_OFFSET} {ID_COUNT}", f"lxc.idmap = g 0 {ID_OFFSET} {ID_COUNT}"]


def to_host(inside: int) -> int:
    """The host id of an id inside a container."""
    if not 0 <= inside < ID_COUNT:
        raise ValueError(f"id {inside} is outside a container's mapped range 0..{ID_COUNT - 1}")
    return ID_OFFSET + inside


def to_inside(host: int) -> int:
    """The id inside a container of a host id in the mapped range (a file of the shifted image)."""
    if not ID_OFFSET <= host < ID_OFFSET + ID_COUNT:
        raise ValueError(f"host id {host} is not one a container maps ({ID_OFFSET}..{ID_OFFSET + ID_COUNT - 1})")
    return host - ID_OFFSET


def is_identity_map(uid_map: str) -> bool:
    """Whether a /proc/PID/uid_map maps a container's root to the host's root (a privileged container)."""
    for line in uid_map.splitlines():
        fields = line.split()
        if len(fields) == 3 and int(fields[0]) == 0 and int(fields[1]) == 0:
            return True
    return False


def shift_tree(root: Path) -> int:
    """Give every file under root (not following links) the mapped owner of its present one; the number shifted.

    chown clears set-uid and set-gid bits, so the mode is set again; a file capability (ping's cap_net_raw) is
    rewritten for the container's root, since a capability recorded for the host's root is ignored in a container.
    Files already in the mapped range are left alone, so an interrupted shift can be run again.
    """
    shifted = 0
    every = [root]
    for directory, subdirs, files in os.walk(root):  # each entry once, below its parent; links not followed
        every += [Path(directory) / name for name in (*subdirs, *files)]
    for path in every:
        st = path.lstat()
        if ID_OFFSET <= st.st_uid < ID_OFFSET + ID_COUNT:
            continue
        capability = _read_capability(path, st)
        os.lchown(path, to_host(st.st_uid), to_host(st.st_gid))
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))
        if capability is not None:
            os.setxattr(path, CAPABILITY_XATTR, namespaced_capability(capability))
        shifted += 1
    return shifted


def _read_capability(path: Path, st: os.stat_result) -> bytes | None:
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        return os.getxattr(path, CAPABILITY_XATTR)
    except OSError:
        return None


def namespaced_capability(value: bytes) -> bytes:
    """A file capability (revision 2) rewritten as revision 3 owned by the container's root."""
    if len(value) < 20:
        raise ValueError(f"file capability of {len(value)} bytes: not revision 2 or 3")
    (magic,) = struct.unpack_from("<I", value)
    revision = magic & _CAP_REVISION_MASK
    if revision not in (_CAP_V2, _CAP_V3):
        raise ValueError(f"file capability revision {revision >> 24}: only 2 and 3 are known")
    flags = magic & ~_CAP_REVISION_MASK
    return struct.pack("<I", _CAP_V3 | flags) + value[4:20] + struct.pack("<I", ID_OFFSET)
