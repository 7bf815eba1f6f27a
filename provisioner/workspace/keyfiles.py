"""Private keys are checked before they are used: only their owner may read them, and that owner is whoever runs
provision. A key that group or others can read may already be someone else's too; a key owned by another
account can be replaced by it. Either way it is refused, naming the file and what is wrong, never used."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from provisioner.errors import ProvisionError


def private_key_problem(path: Path) -> str | None:
    """What makes `path` unfit as a private key (its mode or owner); None when only this user may read it.
    A link is judged by the file it leads to, which is what ssh reads."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if mode & 0o077:
        return f"mode {mode:04o} lets group or others at this private key; it must be 0600 (chmod 600 {path})"
    if info.st_uid != os.geteuid():
        return (
            f"owned by uid {info.st_uid}, not by uid {os.geteuid()} who runs provision; the key must be yours, "
            "mode 0600"
        )
    return None


def checked_controller_key(path: Path, what: str) -> Path:
    """`path` when it is fit to use; a ProvisionError naming the file and the problem when it is not. A key that
    does not exist yet is not checked (it is created mode 0600, or ssh says it is missing)."""
    if not os.path.lexists(path):
        return path
    problem = private_key_problem(path)
    if problem is not None:
        raise ProvisionError(f"{path}: {what}: {problem}; refusing to use it")
    return path
