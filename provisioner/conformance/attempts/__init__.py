"""The blocked attempts between two verify runs (issue 21): the gateway's deny counters and log lines, and the
refused logins and sudo attempts on the production hosts, from the previous run's end to this run's start.

`before_run` reads the gateway's counters as the run starts; `after_run`, once the suite has ended, reads them
again and keeps them (evidence/attempts-state.json), so the next run counts from there: the suite's own probes
(denied connections, refused logins made on purpose) fall inside a run and are never counted as attempts.

The production journals reach the controller late, by shipping: an entry may arrive after the run that should have
counted it has read the logs. So they are read by arrival, not by time: each run reads a host's copy from where
the previous run stopped (the journal's cursor, kept per host) up to the first entry stamped after this run's end,
and counts what is not inside a verify run's own window (the windows of the last runs are kept for that). An entry
that arrived after its window was read is counted by the next run, marked late; none is counted twice.

A run that started and never finished (or still runs beside this one) leaves its probes mixed into the counters and
logs: then this run counts nothing and says why, and the next run counts from this run's end.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.conformance.attempts import auth_log, counters
from provisioner.conformance.attempts.auth_log import Entry
from provisioner.conformance.attempts.sources import LiveSources, Sources, Unreadable, deny_lines
from provisioner.site.load import LoadedSite
from provisioner.site.policy import log_shipping_hosts
from provisioner.workspace.files import write_atomic
from provisioner.workspace.redact import Redactor
from provisioner.workspace.site_state import SiteState

STATE_FILE = "attempts-state.json"  # in the site's evidence folder
ATTEMPTS_FILE = "attempts.json"  # in the run folder
GATEWAY_LINES = 100  # deny log lines kept per run
REFUSED_KEPT = 200  # refusals listed per run (by_person counts them all)
NO_EARLIER_RUN = "no earlier run: nothing to count from (the next run counts from this run's end)"
RUN_WINDOWS_KEPT = 2000  # the windows of the last verify runs, so that their probes arriving late are not counted
RUN_WINDOWS_DAYS = 31

__all__ = ["ATTEMPTS_FILE", "STATE_FILE", "Snapshot", "after_run", "before_run", "state_path"]


@dataclass(frozen=True)
class Snapshot:
    """The gateway's counters as a run starts, and what the previous run left to count from."""

    time: dt.datetime
    counters: dict[str, int] | None  # None: could not be read
    why: str  # why the counters could not be read ("" when read)
    previous: dict[str, Any] | None = None  # the previous run's end as kept: time, counters, why
    unfinished: str | None = None  # start of a run that never finished, or still runs


@dataclass(frozen=True)
class JournalRead:
    """How this run reads the production journals: up to its end, outside the verify runs' own windows, each from
    where the previous run stopped (host -> {"cursor": ...} or {"time": ...})."""

    end: dt.datetime
    windows: list[tuple[dt.datetime, dt.datetime]]
    positions: Mapping[str, Mapping[str, str]]


def state_path(state: SiteState) -> Path:
    return state.evidence_dir / STATE_FILE


def before_run(site: LoadedSite, state: SiteState, sources: Sources | None = None) -> Snapshot:
    """Read the gateway's counters as the run starts and mark the run as running."""
    sources = sources or LiveSources(site.model, state)
    kept = _load(state)
    read, why = _counters(sources)
    start = Snapshot(
        time=sources.now(),  # after the counters: what they hold lies before it, the probes all come after it
        counters=read,
        why=why,
        previous=kept.get("end") if isinstance(kept.get("end"), dict) else None,
        unfinished=str(kept["running"]["time"]) if isinstance(kept.get("running"), dict) else None,
    )
    _save(state, {**kept, "running": {"time": _iso(start.time)}})
    return start


def after_run(
    site: LoadedSite, state: SiteState, run_dir: Path, start: Snapshot, sources: Sources | None = None
) -> dict[str, Any]:
    """The attempts between the previous run and `start`, written to the run folder as attempts.json; the counters
    at this run's end kept for the next run."""
    sources = sources or LiveSources(site.model, state)
    end = sources.now()  # the suite is done: what happens from here on is the next run's to count
    read, why = _counters(sources)
    kept = _load(state)
    windows = [*_run_windows(kept), (start.time, end)]
    unfinished = _time(start.unfinished)
    if unfinished is not None and unfinished < start.time:  # a run that never finished: its probes, late or not
        windows.insert(-1, (unfinished, start.time))
    found, journals = between_runs(site, start, sources, JournalRead(end, windows, _positions(kept)))
    attempts = _scrubbed(found, Redactor(state.secret_values()))
    running = kept.get("running")
    still = running if isinstance(running, dict) and running.get("time") != _iso(start.time) else None
    _save(state, {
        "end": {"time": _iso(end), "counters": read, "why": why},
        "journals": journals,
        "runs": [[_iso(a), _iso(b)] for a, b in windows if b >= end - dt.timedelta(days=RUN_WINDOWS_DAYS)][
            -RUN_WINDOWS_KEPT:
        ],
        **({"running": still} if still else {}),
    })  # fmt: skip
    write_atomic(run_dir / ATTEMPTS_FILE, json.dumps(attempts, indent=2, sort_keys=True) + "\n")
    return attempts


def between_runs(
    site: LoadedSite, start: Snapshot, sources: Sources, read: JournalRead
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The `attempts` entry of the verification history (issue 21's shared contract), and where each production
    journal was read up to (for the next run)."""
    attempts: dict[str, Any] = {"since": None, "until": _iso(start.time)}
    no_window = _no_window(start)
    if no_window is not None:
        # nothing is counted, but the journals are read up to this run's end: the next run reads on from there
        _found, _logs, journals = _refusals(site, sources, start, read, count=False)
        return {
            **attempts,
            "window": no_window,
            "gateway": {"read": False, "why": no_window, "by_pair": {}},
            "refused": [],
            "by_person": {},
            "logs": {"read": False, "why": no_window},
        }, journals
    assert start.previous is not None
    since = dt.datetime.fromisoformat(str(start.previous["time"]))
    attempts["since"] = _iso(since)
    attempts["gateway"] = {**_gateway_counts(site, start), "log": _gateway_log(sources, since, start.time)}
    found, logs, journals = _refusals(site, sources, start, read, count=True)
    attempts["refused"] = [r.as_dict() for r in found[:REFUSED_KEPT]]
    attempts["refused_total"] = len(found)
    attempts["by_person"] = auth_log.by_person(found)
    attempts["logs"] = logs
    return attempts, journals


def _no_window(start: Snapshot) -> str | None:
    if start.unfinished is not None:
        return (
            f"the verify run started {start.unfinished} did not finish (or still runs): its probes cannot be told "
            "from attempts, so none are counted this time (the next run counts from this run's end)"
        )
    if start.previous is None or not start.previous.get("time"):
        return NO_EARLIER_RUN
    return None


def _gateway_counts(site: LoadedSite, start: Snapshot) -> dict[str, Any]:
    assert start.previous is not None
    previous = start.previous.get("counters")
    if start.counters is None:
        return {"read": False, "why": f"at this run's start: {start.why}", "by_pair": {}}
    if not isinstance(previous, dict):
        why = f"the counters at the previous run's end could not be read ({start.previous.get('why') or 'not kept'})"
        return {"read": False, "why": why, "by_pair": {}}
    found = counters.between(
        {str(k): int(v) for k, v in previous.items()}, start.counters, counters.pair_names(site.model)
    )
    return {"read": True, "why": "; ".join(found.notes), "by_pair": found.by_pair, "other": found.other}


def _gateway_log(sources: Sources, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    try:
        lines = deny_lines(sources.gateway_journal(since, until), since, until)
    except Unreadable as exc:
        return {"read": False, "why": str(exc), "lines": [], "total": 0}
    why = (
        ""
        if lines
        else "no deny line in the gateway's kernel log for the window (inside a container the kernel does not log "
        "for the gateway's namespace unless nf_log_all_netns is set: the counters are the record there)"
    )
    return {"read": True, "why": why, "lines": lines[:GATEWAY_LINES], "total": len(lines)}


def _refusals(
    site: LoadedSite, sources: Sources, start: Snapshot, read: JournalRead, count: bool
) -> tuple[list[auth_log.Refusal], dict[str, Any], dict[str, dict[str, str]]]:
    """The refusals in the production journals that arrived since the previous run read them, outside every verify
    run's own window; the logs' summary; where each journal was read up to."""
    hosts = log_shipping_hosts(site.model)
    if not hosts:
        return [], {"read": False, "why": "the site has no production host: no journal is shipped"}, {}
    previous_end = _time((start.previous or {}).get("time"))
    attribution = auth_log.Attribution.of(site.model)
    found: list[auth_log.Refusal] = []
    problems = []
    journals: dict[str, dict[str, str]] = {}
    for host in hosts:
        position = read.positions.get(host.name) or {}
        cursor = position.get("cursor") or None
        # without a cursor (the first read of this copy): the entries stamped from the previous run's end on, or,
        # with no previous run, from this run's start (none of those is counted; the read only sets the cursor)
        since = _time(position.get("time")) or previous_end or start.time
        try:
            arrived = sources.host_journal(host, cursor, None if cursor else since)
        except Unreadable as exc:
            problems.append(str(exc))
            journals[host.name] = {"time": _iso(since)}  # read again from a time: a cursor that fails is dropped
            continue
        taken, last_cursor = _arrived_before(arrived, read.end)
        journals[host.name] = (
            {"cursor": last_cursor} if last_cursor else ({"cursor": cursor} if cursor else {"time": _iso(since)})
        )
        counted = []
        for raw in taken:
            entry = Entry.from_journal(raw)
            if entry is None or (cursor is None and entry.time < since) or _inside(entry.time, read.windows):
                continue
            counted.append(raw)
        if count:
            found += auth_log.refusals(host.name, counted, attribution)
    logs: dict[str, Any] = {
        "read": not problems,
        "why": "; ".join(problems) if problems else f"shipped journals of {', '.join(h.name for h in hosts)}",
    }
    late = sum(1 for r in found if previous_end is not None and r.time < previous_end)
    if late:
        logs["late"] = late
        logs["why"] += f" ({late} refused before the previous run's end, arrived after it had read them: counted here)"
    return sorted(found, key=lambda r: r.time), logs, journals


def _arrived_before(arrived: list[Mapping[str, Any]], end: dt.datetime) -> tuple[list[Mapping[str, Any]], str | None]:
    """The entries in arrival order up to the first one stamped at or after this run's end (that one and what
    follows are the next run's to read), and the cursor of the last one taken."""
    taken = []
    for raw in arrived:
        entry = Entry.from_journal(raw)
        if entry is not None and entry.time >= end:
            break
        taken.append(raw)
    cursors = [str(raw["__CURSOR"]) for raw in taken if raw.get("__CURSOR")]
    return taken, (cursors[-1] if cursors else None)


def _inside(moment: dt.datetime, windows: list[tuple[dt.datetime, dt.datetime]]) -> bool:
    return any(begin <= moment < finish for begin, finish in windows)


def _run_windows(kept: Mapping[str, Any]) -> list[tuple[dt.datetime, dt.datetime]]:
    windows = []
    for pair in kept.get("runs") or []:
        if isinstance(pair, list) and len(pair) == 2:
            begin, finish = _time(pair[0]), _time(pair[1])
            if begin is not None and finish is not None:
                windows.append((begin, finish))
    return windows


def _positions(kept: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    journals = kept.get("journals")
    if not isinstance(journals, dict):
        return {}
    return {
        str(host): {str(k): str(v) for k, v in position.items() if k in ("cursor", "time") and isinstance(v, str)}
        for host, position in journals.items()
        if isinstance(position, dict)
    }


def _time(value: Any) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _counters(sources: Sources) -> tuple[dict[str, int] | None, str]:
    try:
        return sources.gateway_counters(), ""
    except Unreadable as exc:
        return None, str(exc)


def _load(state: SiteState) -> dict[str, Any]:
    try:
        kept = json.loads(state_path(state).read_text())
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _save(state: SiteState, kept: Mapping[str, Any]) -> None:
    state.evidence_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(state_path(state), json.dumps(kept, indent=2, sort_keys=True) + "\n")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _scrubbed(value: Any, redactor: Redactor) -> Any:
    """Every text in the attempts masked of the site's secrets (the history entry is not in the run folder, which
    verify's Redactor scrubs)."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {redactor.text(str(k)): _scrubbed(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, redactor) for v in value]
    return value
