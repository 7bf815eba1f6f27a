"""Small helpers shared by the route modules (parameter coercion, size parsing)."""

from __future__ import annotations

import re
from typing import Any

from .formats import split_list


def flag(params: dict[str, Any], key: str, default: bool = False) -> bool:
    """A verified boolean parameter (only 0/1 or JSON true/false get this far)."""
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value) == "1"


def opt_int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    return None if value is None else int(value)


def opt_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    return None if value is None else str(value)


def list_param(params: dict[str, Any], key: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return split_list(str(value))


def size_bytes(text: str) -> int:
    """`32G` / `512M` / `1024` -> bytes (PVE::JSONSchema::parse_size)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])?", text.strip())
    if not m:
        return 0
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(m.group(2) or "", 1)
    return int(float(m.group(1)) * factor)


PVE_VERSIONS = {"9.1": ("9.1.1", "9.1", "42b3a5e5a1b2c3d4"), "8.4": ("8.4.1", "8.4", "2a5fa54a8503f96d")}


def version_info(schema_version: str) -> dict[str, str]:
    version, release, repoid = PVE_VERSIONS.get(schema_version, PVE_VERSIONS["9.1"])
    return {"version": version, "release": release, "repoid": repoid}
