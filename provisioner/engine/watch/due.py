"""When a schedule is due: its last run started `every` ago or longer; a schedule that never ran is due at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from provisioner.engine.watch.folder import parse_iso
from provisioner.site.model import WatchSchedule


def last_started(record: dict[str, Any] | None) -> dt.datetime | None:
    if not record or not isinstance(record.get("started"), str):
        return None
    try:
        return parse_iso(record["started"])
    except ValueError:
        return None


def due_at(schedule: WatchSchedule, record: dict[str, Any] | None) -> dt.datetime | None:
    """When the schedule is next due; None: due now (it never ran)."""
    started = last_started(record)
    return None if started is None else started + dt.timedelta(seconds=schedule.seconds)


def is_due(schedule: WatchSchedule, record: dict[str, Any] | None, now: dt.datetime) -> bool:
    when = due_at(schedule, record)
    return when is None or when <= now


def due(schedules: list[WatchSchedule], runs: dict[str, dict[str, Any]], now: dt.datetime) -> list[WatchSchedule]:
    """The schedules due at `now`, in the site file's order."""
    return [s for s in schedules if is_due(s, runs.get(s.name), now)]


def next_due(schedules: list[WatchSchedule], runs: dict[str, dict[str, Any]], now: dt.datetime) -> dt.datetime:
    """The earliest time any schedule is due (`now` when one is due already)."""
    times = [due_at(s, runs.get(s.name)) or now for s in schedules]
    return max(now, min(times)) if times else now
