"""The one way the controller writes a file: whole or not at all (a temporary file beside it, then a rename)."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str | bytes, mode: int | None = None) -> Path:
    """Write `text` (or bytes) to `path` so that a reader sees the old or the new content, never half of it. With
    `mode`, the file is created with those permissions from its first byte (for secrets)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    if isinstance(text, bytes):
        with os.fdopen(fd, "wb") as binary:
            binary.write(text)
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    os.replace(tmp, path)
    return path
