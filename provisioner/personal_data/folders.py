"""The data folders of a host, read as text (first bytes of each file) for the scan; binary files are skipped.

Two ways to read them: over SSH on the host (`read_folders`: the host's own python runs the walk, so its root
decides what it prints), or from the hypervisor's side through a directory descriptor of the machine's root
(`read_tree`: the controller's own code walks it, one name at a time, never following a link, opening regular
files only). verify uses the second where the backend gives such a view (LXC).
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess

from provisioner.errors import ProvisionError
from provisioner.site.model import Host
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState

READ_SCRIPT = r"""
import json, os, sys
limit = int(sys.argv[1])
found = []
for top in sys.argv[2:]:
    for folder, _, names in os.walk(top):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read(limit)
            except OSError:
                continue
            found.append([path, None if b"\0" in data[:4096] else data.decode("utf-8", "replace")])
print(json.dumps(found))
"""


def read_folders(state: SiteState, host: Host, folders: list[str], max_bytes: int) -> list[tuple[str, str | None]]:
    """(path, text or None for binary) of every regular file under the folders that exist on the host."""
    remote = " ".join(
        ["sudo", "-n", "python3", "-c", shlex.quote(READ_SCRIPT), str(max_bytes), *(shlex.quote(f) for f in folders)]
    )
    proc = subprocess.run(
        ["ssh", "-i", str(state.controller_identity()), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={state.known_hosts}",
         "-o", "ConnectTimeout=10", f"{AUTOMATION_USER}@{host.address}", remote],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ProvisionError(f"cannot read the data folders of {host.name} (exit {proc.returncode})")
    return [(path, text) for path, text in json.loads(proc.stdout)]


# The kernel's own file systems, never a data folder (reading them has effects or never ends).
VIRTUAL_TOPS = ("proc", "sys", "dev", "run")
MAX_DEPTH = 64


def read_tree(root_fd: int, folders: list[str], max_bytes: int) -> list[tuple[str, str | None]]:
    """What `read_folders` reads, walked from `root_fd` (the machine's root directory) by the controller itself:
    each name opened beneath its parent with O_NOFOLLOW (a link is never followed, in the folder's own path nor
    below it), only regular files read, device files, FIFOs and sockets never opened."""
    found: list[tuple[str, str | None]] = []
    for top in folders:
        parts = [p for p in top.split("/") if p]
        if any(p in (".", "..") for p in parts) or (parts and parts[0] in VIRTUAL_TOPS):
            continue
        fd = _open_dir_beneath(root_fd, parts)
        if fd is None:
            continue
        try:
            _walk(fd, "/" + "/".join(parts), found, max_bytes, 0)
        finally:
            os.close(fd)
    return found


def _open_dir_beneath(root_fd: int, parts: list[str]) -> int | None:
    fd = os.dup(root_fd)
    for part in parts:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:  # missing, a link, not a folder: nothing to read there
            os.close(fd)
            return None
        os.close(fd)
        fd = child
    return fd


def _walk(dir_fd: int, path: str, found: list[tuple[str, str | None]], limit: int, depth: int) -> None:
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        return
    folders = []
    for name in names:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            regular, text = _read_file(dir_fd, name, limit)
            if regular:
                found.append((f"{path.rstrip('/')}/{name}", text))
        elif stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
            folders.append(name)
    for name in folders:
        try:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            _walk(child, f"{path.rstrip('/')}/{name}", found, limit, depth + 1)
        finally:
            os.close(child)


def _read_file(dir_fd: int, name: str, limit: int) -> tuple[bool, str | None]:
    """(read, text): the file's first bytes as text, None for binary; read is False when it is not (or no longer)
    a regular file, or cannot be read."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return False, None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else after the listing
            return False, None
        data = b""
        while len(data) < limit:
            chunk = os.read(fd, min(65536, limit - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError:
        return False, None
    finally:
        os.close(fd)
    return True, None if b"\0" in data[:4096] else data.decode("utf-8", "replace")
