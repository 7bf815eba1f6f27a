"""Where the controller keeps its SSH connection sockets: a folder of the site's state only its owner may enter.

A connection master (ControlMaster/ControlPersist) listens on a unix socket; whoever can reach that socket runs
commands on the lab host as the automation account, without a key. So the sockets live in `<state>/ssh`, mode 0700,
owned by whoever runs provision, never at a predictable path under /tmp where another account could plant a folder,
a link or a socket of its own first.

A unix socket's path is at most 107 bytes (108 with the terminating NUL), and ssh first binds the master at
`<ControlPath>.<16 random characters>` before renaming it. Sockets are named by a short hash of the connection
(Ansible's own scheme: 10 hex digits of a SHA-1 of host, port and user), so the folder may be up to
`FOLDER_MAX` characters long; a deeper state folder is refused before any connection is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
from pathlib import Path

from provisioner.errors import InputError, ProvisionError

SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, the last one the terminating NUL
MASTER_SUFFIX = len(".") + 16  # ssh binds "<ControlPath>.<16 random characters>", then renames it into place
ANSIBLE_NAME = 10  # Ansible names a socket by the first 10 hex digits of a SHA-1 of "host-port-user"
VERIFY_PREFIX = "v"  # conformance checks' own masters (testinfra), apart from Ansible's
NAME_MAX = len(VERIFY_PREFIX) + ANSIBLE_NAME
FOLDER_MAX = SOCKET_PATH_MAX - MASTER_SUFFIX - len("/") - NAME_MAX


def verify_socket_name(user: str, address: str, port: int = 22) -> str:
    """The socket name of a conformance check's connection master to `user@address:port`."""
    digest = hashlib.sha1(f"{address}-{port}-{user}".encode(), usedforsecurity=False).hexdigest()
    return VERIFY_PREFIX + digest[:ANSIBLE_NAME]


def check_socket_folder_path(folder: Path) -> None:
    """Refuse a folder whose sockets would not fit a unix socket path, or whose name ssh would expand."""
    text = str(folder)
    if len(os.fsencode(text)) > FOLDER_MAX:
        raise InputError(
            f"{text}: the SSH connection-socket folder's path is {len(os.fsencode(text))} bytes long; a unix "
            f"socket path holds at most {SOCKET_PATH_MAX} bytes, which leaves at most {FOLDER_MAX} for this folder. "
            "Set PROVISION_STATE_DIR to a shorter folder (or use a checkout nearer to /) and run again."
        )
    if "%" in text:
        raise InputError(
            f"{text}: the SSH connection-socket folder's path holds '%', which ssh reads as a token in ControlPath. "
            "Set PROVISION_STATE_DIR to a folder without '%' and run again."
        )


# Where the sockets of a state folder too deep for a unix socket path live instead: a private folder (0700, ours)
# named by a hash of the state folder's path, under /run (or /tmp without /run). A link would not do: Ansible
# resolves its control path folder before it builds the socket path.
SHORT_ROOTS = (Path("/run"), Path("/tmp"))


def socket_folder_path(folder: Path) -> Path:
    """Where the sockets of `folder` (already checked by ensure_socket_folder) go: `folder` itself when its
    sockets fit a unix socket path, else `provisioner-ssh-UID/<hash of its path>` under /run (or /tmp), both
    checked like the socket folder (real folders of ours, mode 0700)."""
    if len(os.fsencode(str(folder))) <= FOLDER_MAX:
        return folder
    root = next((r for r in SHORT_ROOTS if r.is_dir()), SHORT_ROOTS[-1])
    short = root / f"provisioner-ssh-{os.geteuid()}"
    for part in (short, short / hashlib.sha256(os.fsencode(str(folder))).hexdigest()[:12]):
        with contextlib.suppress(FileExistsError):
            part.mkdir(mode=0o700)
        _check_private_folder(part, "the short SSH connection-socket folder of a deep state folder")
    check_socket_folder_path(part)
    return part


def ensure_socket_folder(folder: Path) -> Path:
    """`folder` as a real folder owned by this user, mode 0700 (created so): refused, untouched, when it is a link,
    not a folder, someone else's, or open to group or others (a socket planted there could be anyone's). Returns the
    path ssh is to be given for it (socket_folder_path)."""
    if "%" in str(folder):
        check_socket_folder_path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    _check_private_folder(folder, "the SSH connection-socket folder")
    return socket_folder_path(folder)


def _check_private_folder(folder: Path, what: str) -> None:
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        raise ProvisionError(
            f"{folder}: {what} is a symbolic link (to {os.readlink(folder)}); provision keeps its connection "
            "sockets only in a real folder, mode 0700. Remove the link and run again."
        )
    if not stat.S_ISDIR(info.st_mode):
        raise ProvisionError(
            f"{folder}: {what} is not a folder; remove it and run again (provision creates it, mode 0700)."
        )
    if info.st_uid != os.geteuid():
        raise ProvisionError(
            f"{folder}: {what} belongs to uid {info.st_uid}, not to uid {os.geteuid()} "
            "who runs provision; another account could reach the connections in it. Remove it and run again "
            "(provision creates it, mode 0700)."
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        raise ProvisionError(
            f"{folder}: {what} has mode {mode:04o}; it must be 0700 (only its owner may "
            "enter it), and a socket in it may have been planted while it was open. Remove it and run again "
            "(provision creates it, mode 0700)."
        )


def close_masters(folder: Path) -> None:
    """Stop the connection masters whose sockets are in `folder` (their machines may be gone, and a new lab reuses
    the same addresses), and remove the sockets."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for socket_path in folder.iterdir():
        if socket_path.is_socket():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "lab"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            socket_path.unlink(missing_ok=True)
