"""The official PVE API schema (`pve-api-<version>.flat.json`): loading, routing and validation.

Usable on its own for contract tests::

    schema = Schema.load("9.1")
    errors = schema.validate("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "101"})

The flat file maps `{path: {METHOD: op}}`. Families written `net[n]` stand for `net0`..`net31`
etc.; the ranges are not in the file and come from qemu-server / pve-container (`FAMILY_SIZES`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .checker import NOT_IN_SCHEMA, Errors, add_error, check_prop

SCHEMA_VERSIONS = ("9.1", "8.4")

# How many members each `[n]` family has (index 0 .. size-1), from qemu-server/pve-container/corosync.
FAMILY_SIZES: dict[str, int] = {
    "net": 32,
    "ipconfig": 32,
    "scsi": 31,
    "virtio": 16,
    "ide": 4,
    "sata": 6,
    "unused": 256,
    "hostpci": 16,
    "serial": 4,
    "parallel": 3,
    "usb": 14,
    "numa": 8,
    "virtiofs": 10,
    "mp": 256,
    "dev": 256,
    "link": 8,
    "acmedomain": 6,
}
SWALLOWING_PARAMS = frozenset({"{cidr}"})
_FAMILY_RE = re.compile(r"^([a-z]+)(\d+)$")


class SchemaUnavailable(RuntimeError):
    """The shared schema folder (../shared/pve-api next to the repository) is not there."""


def schema_dir() -> Path | None:
    """Where the schema files live: $PVEFAKE_SCHEMA_DIR, else <repo>/../shared/pve-api; None if absent."""
    env = os.environ.get("PVEFAKE_SCHEMA_DIR")
    candidates = [Path(env)] if env else []
    # this file is <repo>/tests/fakes/pvefake/schema.py, so parents[3] is the repository root
    candidates.append(Path(__file__).resolve().parents[3] / ".." / "shared" / "pve-api")
    for candidate in candidates:
        if (candidate / "pve-api-9.1.flat.json").is_file():
            return candidate.resolve()
    return None


@dataclass(frozen=True)
class RouteMatch:
    template: str
    params: dict[str, str]


class RouteTable:
    """Matches concrete paths to `{param}` templates; literal segments win over placeholders."""

    def __init__(self, templates: list[str]) -> None:
        self._templates = sorted(set(templates))
        self._by_len: dict[int, list[tuple[str, list[str]]]] = {}
        for template in self._templates:
            segs = _segments(template)
            self._by_len.setdefault(len(segs), []).append((template, segs))

    def templates(self) -> list[str]:
        return list(self._templates)

    def match(self, segments: list[str]) -> RouteMatch | None:
        best: tuple[int, RouteMatch] | None = None
        for template, tsegs in self._by_len.get(len(segments), []):
            params: dict[str, str] = {}
            literal = 0
            for tseg, seg in zip(tsegs, segments, strict=True):
                if tseg.startswith("{") and tseg.endswith("}"):
                    if seg == "":
                        break
                    params[tseg[1:-1]] = seg
                elif tseg == seg:
                    literal += 1
                else:
                    break
            else:
                if best is None or literal > best[0]:
                    best = (literal, RouteMatch(template, params))
        if best is not None:
            return best[1]
        # A trailing `{cidr}` may swallow one more segment: clients (proxmoxer splits ids on '/')
        # send ipset entries such as `10.0.0.0/24` unescaped.
        for length in sorted(self._by_len, reverse=True):
            if length >= len(segments) or length == 0:
                continue
            head, tail = segments[: length - 1], "/".join(segments[length - 1 :])
            for template, tsegs in self._by_len[length]:
                if tsegs[-1] not in SWALLOWING_PARAMS or len(segments) - length > 1:
                    continue
                params: dict[str, str] = {}
                for tseg, seg in zip(tsegs[:-1], head, strict=True):
                    if tseg.startswith("{"):
                        params[tseg[1:-1]] = seg
                    elif tseg != seg:
                        break
                else:
                    params[tsegs[-1][1:-1]] = tail
                    return RouteMatch(template, params)
        return None


def _segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/")] if path.strip("/") else []


def split_path(path: str) -> list[str]:
    """Concrete path -> percent-decoded segments (UPIDs, userids and token ids keep ':', '@', '!')."""
    from urllib.parse import unquote

    return [unquote(s) for s in _segments(path)]


class Schema:
    """One version of the API schema with route lookup and PVE-style parameter verification."""

    def __init__(self, version: str, paths: dict[str, dict[str, Any]]) -> None:
        self.version = version
        self.paths = paths
        self.routes = RouteTable(list(paths))

    @classmethod
    def load(cls, version: str = "9.1", folder: Path | None = None) -> Schema:
        return _load_cached(version, str(folder) if folder else None)

    def match(self, path: str) -> RouteMatch | None:
        return self.routes.match(split_path(path))

    def route(self, method: str, path: str) -> str | None:
        """The templated route (`/nodes/{node}/qemu/{vmid}/config`) a concrete request path maps to,
        or None when the schema has no such path or not for this method."""
        path = path.split("?", 1)[0]
        if path.startswith("/api2/json"):
            path = path[len("/api2/json") :]
        found = self.match(path)
        if found is None or self.operation(method.upper(), found.template) is None:
            return None
        return found.template

    def operation(self, method: str, template: str) -> dict[str, Any] | None:
        return self.paths.get(template, {}).get(method.upper())

    def property_schema(self, op: dict[str, Any], name: str) -> dict[str, Any] | None:
        props = op.get("parameters", {}).get("properties", {})
        if name in props:
            return props[name]
        m = _FAMILY_RE.match(name)
        if m and f"{m.group(1)}[n]" in props and int(m.group(2)) < FAMILY_SIZES.get(m.group(1), 32):
            return props[f"{m.group(1)}[n]"]
        return None

    def normalize(self, op: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """What pve-http-server does before validation: arrays for `-list` formats are joined with
        commas, scalars become one-element arrays where the schema wants an array."""
        out: dict[str, Any] = {}
        for key, value in params.items():
            prop = self.property_schema(op, key)
            if prop is not None:
                fmt = prop.get("format")
                if isinstance(value, list) and isinstance(fmt, str) and fmt.endswith("-list"):
                    value = ",".join(str(v) for v in value)
                elif prop.get("type") == "array" and not isinstance(value, list):
                    value = [value]
            out[key] = value
        return out

    def check(self, method: str, template: str, params: dict[str, Any]) -> Errors:
        """PVE errors dict for `params` (already merged with path params and normalized)."""
        op = self.operation(method, template)
        if op is None:
            return {"_root": f"Method '{method} {template}' not implemented"}
        errors: Errors = {}
        props: dict[str, Any] = op.get("parameters", {}).get("properties", {})
        for key in sorted(props):
            if key.endswith("[n]"):
                continue  # family members are optional and checked below when present
            check_prop(params.get(key), props[key], key, errors, self.version)
        for key in sorted(params):
            if key in props:
                requires = props[key].get("requires")
                if isinstance(requires, str) and params.get(requires) is None:
                    add_error(errors, requires, f"missing property - '{key}' requires this property")
                continue
            prop = self.property_schema(op, key)
            if prop is None:
                add_error(errors, key, NOT_IN_SCHEMA)
                continue
            check_prop(params[key], prop, key, errors, self.version)
        return errors

    def validate(self, method: str, concrete_path: str, params: dict[str, Any]) -> list[str]:
        """Contract-test helper: `["key: message", ...]` (empty when PVE would accept the request)."""
        method = method.upper()
        path = concrete_path.split("?", 1)[0]
        if path.startswith("/api2/json"):
            path = path[len("/api2/json") :]
        found = self.match(path)
        if found is None or self.operation(method, found.template) is None:
            return [f"_root: Method '{method} {path}' not implemented"]
        merged = dict(params)
        for key, value in found.params.items():
            if key in merged and str(merged[key]) != value:
                return [f"{key}: duplicate parameter (already defined in URI) with conflicting values!"]
            merged[key] = value
        op = self.operation(method, found.template)
        assert op is not None
        errors = self.check(method, found.template, self.normalize(op, merged))
        return [f"{k}: {v}" for k, v in sorted(errors.items())]


@cache
def _load_cached(version: str, folder: str | None) -> Schema:
    if version not in SCHEMA_VERSIONS:
        raise ValueError(f"unknown schema version {version!r}; have {', '.join(SCHEMA_VERSIONS)}")
    base = Path(folder) if folder else schema_dir()
    if base is None:
        raise SchemaUnavailable("PVE API schema folder not found (expected <repo>/../shared/pve-api)")
    path = base / f"pve-api-{version}.flat.json"
    if not path.is_file():
        raise SchemaUnavailable(f"schema file missing: {path}")
    with path.open(encoding="utf-8") as fh:
        return Schema(version, json.load(fh))
