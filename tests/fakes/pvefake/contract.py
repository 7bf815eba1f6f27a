"""Replay a `PVEFAKE_RECORD` file against schema versions (the contract test's building block).

Every recorded request is re-validated against each requested schema version, independently of
the version the fake ran with. A product that must work on PVE 8.4 and 9.1 should produce no
violations for either (requests the fake itself refused are reported too; filter on `status`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .schema import Schema


@dataclass(frozen=True)
class Violation:
    version: str
    method: str
    path: str
    route: str
    status: int
    errors: tuple[str, ...]


def check_recording(
    record_file: str | Path, versions: Iterable[str] = ("9.1", "8.4"), folder: Path | None = None
) -> list[Violation]:
    schemas = [Schema.load(v, folder) for v in versions]
    found: list[Violation] = []
    seen: set[tuple[str, str, str, str]] = set()
    for line in Path(record_file).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        for schema in schemas:
            errors = schema.validate(entry["method"], entry["path"], entry["params"])
            if not errors:
                continue
            key = (schema.version, entry["method"], entry.get("route") or "", "|".join(errors))
            if key in seen:  # the same mistake repeated in a loop is one finding
                continue
            seen.add(key)
            found.append(
                Violation(
                    schema.version,
                    entry["method"],
                    entry["path"],
                    entry.get("route") or "",
                    entry["status"],
                    tuple(errors),
                )
            )
    return found
