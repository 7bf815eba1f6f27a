"""`provision watch tick SITE`: what the scheduler runs. Under the watcher's lock it delivers queued alerts,
re-reads the site file (an invalid one: logged, exit 2, nothing verified), runs verify for each schedule that is
due with the controls it covers, records the run and the alerts it causes; with `for_seconds` it keeps going,
sleeping until the next schedule is due, until that many seconds have passed."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.engine import evidence
from provisioner.engine.watch import due as schedule_due
from provisioner.engine.watch.alerts import AlertBook, Notifier, run_notify
from provisioner.engine.watch.folder import WatcherConfig, WatchFolder, iso
from provisioner.errors import InputError, ProvisionError
from provisioner.site.load import LoadedSite, load_site
from provisioner.site.model import WatchSchedule
from provisioner.site.watch_schedules import covered
from provisioner.workspace.site_state import SiteState


@dataclass
class RunOutcome:
    """What one scheduled verify gave: its folder, the verdict of every control it covered, the failing rows."""

    run_dir: Path
    verdicts: dict[str, str]
    failing: list[dict[str, Any]]
    ok: bool


# site, the watcher's configuration, the control IDs to verify, the trigger ("watch:<schedule>")
Verifier = Callable[[LoadedSite, WatcherConfig, list[str], str], RunOutcome]


def verify_schedule(site: LoadedSite, config: WatcherConfig, controls: list[str], trigger: str) -> RunOutcome:
    """The real thing: `provision verify --controls ...` with the watcher's keys folder and workers."""
    verification = evidence.verify(
        site, workers=config.workers, keys=config.keys_dir, select=None, controls=controls, trigger=trigger
    )
    result = verification.result
    return RunOutcome(result.run_dir, result.covered_verdicts(), result.failed, result.ok)


class Clock:
    """The wall clock; tests pass one of their own."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class TickReport:
    site: str
    locked: bool = True  # False: another tick held the lock, nothing was done
    ran: list[dict[str, Any]] = field(default_factory=list)  # one record per schedule run
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def tick(
    site_name: str,
    *,
    for_seconds: float = 0,
    verifier: Verifier = verify_schedule,
    clock: Clock | None = None,
    notifier: Notifier = run_notify,
) -> TickReport:
    clock = clock or Clock()
    folder = WatchFolder(SiteState(site_name))
    config = folder.config()
    report = TickReport(site_name)
    with folder.lock(wait=for_seconds, sleep=clock.sleep) as taken:
        if not taken:
            folder.log(clock.now(), "another tick holds the lock: this one did nothing")
            report.locked = False
            return report
        start = clock.now()
        end = start + dt.timedelta(seconds=for_seconds)
        alerts = AlertBook(folder)
        while True:
            _deliver(folder, alerts, config, clock, notifier, report)
            site = _site(folder, config, clock)
            assert site.model.watch is not None
            schedules = site.model.watch.schedules
            for schedule in schedule_due.due(schedules, folder.last_runs(), clock.now()):
                if not folder.has_config():  # `provision watch remove` while this tick kept going: no more runs
                    folder.log(clock.now(), "the watcher was removed: this tick stops")
                    return report
                report.ran.append(_run(folder, alerts, site, config, schedule, verifier, clock))
                _deliver(folder, alerts, config, clock, notifier, report)
            now = clock.now()
            upcoming = schedule_due.next_due(schedules, folder.last_runs(), now)
            if for_seconds <= 0 or upcoming >= end:
                return report
            clock.sleep(max(0.0, (upcoming - now).total_seconds()))


def _site(folder: WatchFolder, config: WatcherConfig, clock: Clock) -> LoadedSite:
    """The site file as it is now, checked; a problem is logged and ends the tick with exit 2."""
    try:
        site = load_site(config.site_file)
    except ProvisionError as exc:
        folder.log(clock.now(), f"site file {config.site_file} is not valid, nothing verified: {exc}")
        raise InputError(f"site file {config.site_file} is not valid, nothing verified:\n{exc}") from None
    problem = None
    if site.name != config.site:
        problem = f"it now declares site '{site.name}', not '{config.site}'"
    elif site.model.watch is None:
        problem = "it no longer declares watch:"
    if problem:
        folder.log(clock.now(), f"site file {config.site_file}: {problem}; nothing verified")
        raise InputError(f"site file {config.site_file}: {problem}; nothing verified")
    return site


def _run(
    folder: WatchFolder,
    alerts: AlertBook,
    site: LoadedSite,
    config: WatcherConfig,
    schedule: WatchSchedule,
    verifier: Verifier,
    clock: Clock,
) -> dict[str, Any]:
    started = clock.now()
    controls = covered(schedule)
    record: dict[str, Any] = {"started": iso(started), "every": schedule.every, "controls": controls}
    folder.record_run(schedule.name, {**record, "running": True})
    folder.log(started, f"schedule {schedule.name}: verify {','.join(controls)}")
    try:
        outcome = verifier(site, config, controls, f"watch:{schedule.name}")
    except Exception as exc:  # recorded either way; a defect (not a ProvisionError) still ends the tick loudly
        record.update(finished=iso(clock.now()), error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        folder.record_run(schedule.name, record)
        folder.log(clock.now(), f"schedule {schedule.name}: verify did not run: {record['error']}")
        if not isinstance(exc, ProvisionError):
            raise
        return {"schedule": schedule.name, **record}
    finished = clock.now()
    record.update(finished=iso(finished), run=str(outcome.run_dir), verdicts=outcome.verdicts, ok=outcome.ok)
    folder.record_run(schedule.name, record)
    failing = sorted(cid for cid, verdict in outcome.verdicts.items() if verdict == "fail")
    folder.log(
        finished,
        f"schedule {schedule.name}: run {outcome.run_dir.name} "
        + (f"FAILED {','.join(failing)}" if failing else "no control failed"),
    )
    events = alerts.observe(
        site=site.name,
        schedule=schedule.name,
        verdicts=outcome.verdicts,
        rows=outcome.failing,
        run_dir=str(outcome.run_dir),
        now=finished,
        queue=bool(config.notify),
    )
    for event in events:
        folder.log(finished, f"{event['control']} {event['event']} (window from {event['window_start']})")
    return {"schedule": schedule.name, **record, "events": [f"{e['control']} {e['event']}" for e in events]}


def _deliver(
    folder: WatchFolder, alerts: AlertBook, config: WatcherConfig, clock: Clock, notifier: Notifier, report: TickReport
) -> None:
    for delivery in alerts.deliver(config.notify, config.notify_timeout, clock.now(), notifier):
        last = alerts.last or {}
        line = f"notified {last.get('control')} {last.get('event')}: {delivery.detail}"
        folder.log(clock.now(), line if delivery.delivered else f"{line}; kept for the next tick")
        report.deliveries.append({**last})
