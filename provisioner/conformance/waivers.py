"""Waivers (ACC-7) applied to conformance results.

A failing result of a waived control (optionally only for the waiver's person and/or environment) becomes
"waived": still listed, with the waiver's id, but no longer a failure. An expired waiver waives nothing and
its ACC-7 row fails, so the control turns back into a failure. `provision verify` and `provision report` both
summarise through `apply_waivers`, so they agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from provisioner.site.model import Site, Waiver

WAIVER_CONTROL = "ACC-7"


def waiver_state(waiver: Waiver, today: dt.date, signed: Collection[str]) -> str:
    """active | expired | unsigned (its approver has not signed its present content: `provision waiver approve`)
    | invalid (approved by its own requester: site validation refuses it too)."""
    if waiver.approver == waiver.requester:
        return "invalid"
    if waiver.expires < today:
        return "expired"
    return "active" if waiver.id in signed else "unsigned"


def _row_subjects(row: dict[str, Any]) -> list[str]:
    return [part for part in str(row.get("host", "")).split(",") if part]


def waiver_covers(site: Site, waiver: Waiver, row: dict[str, Any]) -> bool:
    """Whether the waiver's scope (control, person, environment) covers a result row."""
    if row.get("control") != waiver.control:
        return False
    subjects = _row_subjects(row)
    if waiver.person is not None and waiver.person not in subjects:
        return False
    if waiver.environment is not None:
        envs = {h.environment for h in site.hosts if h.name in subjects}
        envs |= {str(r.get("destination_env")) for r in row.get("rows", []) if isinstance(r, dict)}
        if waiver.environment not in envs:
            return False
    return True


def apply_waivers(
    rows: list[dict[str, Any]], site: Site, today: dt.date | None, signed: Collection[str]
) -> list[dict[str, Any]]:
    """New rows: failures covered by an active waiver become 'waived'; one ACC-7 row per waiver is added. A waiver
    is active only when its approver signed its present content (`signed`: see releases.decisions).

    Idempotent: the suite's own status is kept as `raw_status`, and ACC-7 rows from an earlier pass are
    replaced, so results already summarised can be summarised again (e.g. by the report, days later).
    """
    today = today or dt.datetime.now(dt.UTC).date()
    out: list[dict[str, Any]] = []
    for original in rows:
        if original.get("origin") == "waivers":
            continue
        row = dict(original)
        raw = row.get("raw_status", row["status"])
        row["raw_status"] = raw
        row["status"] = raw
        row.pop("waiver", None)
        if raw == "fail":
            for waiver in site.waivers:
                if not waiver_covers(site, waiver, row):
                    continue
                state = waiver_state(waiver, today, signed)
                if state == "active":
                    row["status"] = "waived"
                    row["waiver"] = waiver.id
                    break
                row["evidence"] = (
                    f"{row.get('evidence', '')}\nwaiver '{waiver.id}' covers this but is {state}"
                    + (f" (expired {waiver.expires.isoformat()})" if state == "expired" else "")
                ).strip()
        out.append(row)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for waiver in site.waivers:
        state = waiver_state(waiver, today, signed)
        status = "pass" if state == "active" else "fail"
        scope = ", ".join(x for x in (waiver.person, waiver.environment) if x) or "every host"
        out.append(
            {
                "control": WAIVER_CONTROL,
                "check": "waiver_is_valid",
                "host": waiver.id,
                "status": status,
                "raw_status": status,
                "expected": "approved by someone other than the requester, signed by that approver, unexpired, "
                "with compensating controls",
                "observed": f"{state}: requester {waiver.requester}, approver {waiver.approver}, "
                f"expires {waiver.expires.isoformat()}",
                "evidence": f"waiver {waiver.id} for {waiver.control} ({scope}), risk {waiver.risk}: "
                f"{waiver.justification}; compensating: {', '.join(waiver.compensating) or 'none recorded'}",
                "rows": [],
                "time": now,
                "origin": "waivers",
            }
        )
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts per control: pass, fail, skip, and waived where any result is waived."""
    summary: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = summary.setdefault(row["control"], {"pass": 0, "fail": 0, "skip": 0})
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return summary


def control_status(counts: dict[str, int]) -> str:
    if counts.get("fail"):
        return "fail"
    if counts.get("pass"):
        return "waived" if counts.get("waived") else "pass"
    if counts.get("waived"):
        return "waived"
    return "skip"
