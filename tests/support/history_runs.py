"""Verification histories for tests: entries written by the real `record_run` (signed with the state's real
evidence key), and the ways an intruder changes the file afterwards. Lab tests reuse these on a lab's state."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.conformance.history import history_path, record_run
from provisioner.workspace.site_state import SiteState

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def rows_for(verdicts: dict[str, str]) -> list[dict[str, Any]]:
    """Result rows that summarise to `verdicts` (control -> pass | fail | waived | skip)."""
    return [
        {"control": cid, "check": f"check_{cid}", "host": "site", "status": status} for cid, status in verdicts.items()
    ]


def record(
    state: SiteState,
    when: dt.datetime,
    verdicts: dict[str, str],
    *,
    trigger: str = "manual",
    attempts: dict[str, Any] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """One verify run finished at `when` with these verdicts, appended by the real record_run."""
    run = Path(name or f"{when:%Y%m%dT%H%M%SZ}-verify")
    return record_run(
        state, run, rows_for(verdicts), "sha256:" + "0" * 64, "SHA256:test", trigger=trigger, covered=list(verdicts),
        attempts=attempts, now=when,
    )  # fmt: skip


def lines(state: SiteState) -> list[str]:
    return history_path(state).read_text().splitlines(keepends=True)


def rewrite(state: SiteState, new: list[str]) -> None:
    history_path(state).write_text("".join(new))


def delete_line(state: SiteState, number: int) -> None:
    """Remove line `number` (1-based), as an intruder hiding a failed run would."""
    current = lines(state)
    del current[number - 1]
    rewrite(state, current)


def swap_lines(state: SiteState, first: int, second: int) -> None:
    current = lines(state)
    current[first - 1], current[second - 1] = current[second - 1], current[first - 1]
    rewrite(state, current)


def edit_line(state: SiteState, number: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change line `number`'s entry in place (its hash and signature left as they were)."""
    current = lines(state)
    entry = json.loads(current[number - 1])
    change(entry)
    current[number - 1] = json.dumps(entry, sort_keys=True) + "\n"
    rewrite(state, current)
