"""Provenance records in the site's evidence folder (`<state>/evidence/data/`): what was put where, by whom.

A record names tables, columns, rules, counts and people; it never holds a data value.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState, operator

KINDS = ("seed", "refresh", "scrub", "scan")


def data_dir(state: SiteState) -> Path:
    return state.evidence_dir / "data"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_record(kind: str, environment: str, **fields: Any) -> dict[str, Any]:
    stamp = now()
    return {
        "id": f"{kind}-{environment}-{stamp.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}",
        "kind": kind,
        "environment": environment,
        "time": stamp.isoformat(),
        "operator": operator(),
        **fields,
    }


def write_record(state: SiteState, record: dict[str, Any]) -> Path:
    folder = data_dir(state)
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    path = folder / f"{record['id']}.json"
    return write_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def records(state: SiteState, kind: str | None = None, environment: str | None = None) -> list[dict[str, Any]]:
    """Records, oldest first."""
    folder = data_dir(state)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (kind is None or record.get("kind") == kind) and (
            environment is None or record.get("environment") == environment
        ):
            record["_file"] = str(path)
            found.append(record)
    return sorted(found, key=lambda r: r.get("time", ""))


def find(state: SiteState, record_id: str) -> dict[str, Any] | None:
    return next((r for r in records(state) if r.get("id") == record_id), None)
