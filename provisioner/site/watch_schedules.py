"""The site file's `watch:` section: checks a schema cannot express, and which schedule verifies which control."""

from __future__ import annotations

from collections.abc import Iterator

import yaml

from provisioner.paths import control_catalogue
from provisioner.site.model import MIN_WATCH_SECONDS, Site, WatchSchedule
from provisioner.site.yamlsource import KeyPath

Problem = tuple[KeyPath, str]


def catalogue_ids() -> list[str]:
    """The control IDs of the catalogue, in its order."""
    return [str(row["id"]) for row in yaml.safe_load(control_catalogue().read_text())]


def family(control: str) -> str:
    return control.split("-", 1)[0]


def covered(schedule: WatchSchedule, ids: list[str] | None = None) -> list[str]:
    """The control IDs a schedule verifies, in catalogue order (all of them when it names none)."""
    ids = catalogue_ids() if ids is None else ids
    if not schedule.controls:
        return list(ids)
    wanted = set(schedule.controls)
    return [cid for cid in ids if cid in wanted or family(cid) in wanted]


def intervals_by_control(site: Site) -> dict[str, int]:
    """Per control, the shortest interval (seconds) a schedule verifies it at; controls no schedule covers are
    absent. Empty when the site declares no `watch:`."""
    if site.watch is None:
        return {}
    ids = catalogue_ids()
    intervals: dict[str, int] = {}
    for schedule in site.watch.schedules:
        for cid in covered(schedule, ids):
            intervals[cid] = min(intervals.get(cid, schedule.seconds), schedule.seconds)
    return intervals


def check_watch(site: Site) -> Iterator[Problem]:
    if site.watch is None:
        return
    ids = catalogue_ids()
    families = sorted({family(cid) for cid in ids})
    seen: set[str] = set()
    for index, schedule in enumerate(site.watch.schedules):
        path: KeyPath = ("watch", "schedules", index)
        if schedule.name in seen:
            yield ((*path, "name"), f"schedule name '{schedule.name}' is used twice; allowed: a name of its own")
        seen.add(schedule.name)
        if schedule.seconds < MIN_WATCH_SECONDS:
            yield (
                (*path, "every"),
                f"'{schedule.every}' is shorter than {MIN_WATCH_SECONDS}s; allowed: {MIN_WATCH_SECONDS}s or longer",
            )
        for position, name in enumerate(schedule.controls):
            if name not in ids and name not in families:
                yield (
                    (*path, "controls", position),
                    f"'{name}' is no control or family of the catalogue; allowed: {', '.join(families)} or an ID "
                    f"such as {ids[0]}",
                )
