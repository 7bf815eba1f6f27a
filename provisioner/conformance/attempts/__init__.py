"""The blocked attempts between two verify runs (issue 21): the gateway's deny counters and log lines, and the
refused logins and sudo attempts on the production hosts, from the previous run's end to this run's start.

`before_run` reads the gateway's counters as the run starts; `after_run`, once the suite has ended, reads them
again and keeps them (evidence/attempts-state.json), so the next run counts from there: the suite's own probes
(denied connections, refused logins made on purpose) fall inside a run and are never counted as attempts. The logs
of the window are read after the run, when shipping has had time to bring them, bounded by the hosts' timestamps.

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
from provisioner.conformance.attempts.sources import LiveSources, Sources, Unreadable, deny_lines, in_window
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

__all__ = ["ATTEMPTS_FILE", "STATE_FILE", "Snapshot", "after_run", "before_run", "state_path"]


@dataclass(frozen=True)
class Snapshot:
    """The gateway's counters as a run starts, and what the previous run left to count from."""

    time: dt.datetime
    counters: dict[str, int] | None  # None: could not be read
    why: str  # why the counters could not be read ("" when read)
    previous: dict[str, Any] | None = None  # the previous run's end as kept: time, counters, why
    unfinished: str | None = None  # start of a run that never finished, or still runs


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
    attempts = _scrubbed(between_runs(site, start, sources), Redactor(state.secret_values()))
    kept = _load(state)
    running = kept.get("running")
    still = running if isinstance(running, dict) and running.get("time") != _iso(start.time) else None
    _save(state, {"end": {"time": _iso(end), "counters": read, "why": why}, **({"running": still} if still else {})})
    write_atomic(run_dir / ATTEMPTS_FILE, json.dumps(attempts, indent=2, sort_keys=True) + "\n")
    return attempts


def between_runs(site: LoadedSite, start: Snapshot, sources: Sources) -> dict[str, Any]:
    """The `attempts` entry of the verification history (issue 21's shared contract)."""
    attempts: dict[str, Any] = {"since": None, "until": _iso(start.time)}
    no_window = _no_window(start)
    if no_window is not None:
        return {
            **attempts,
            "window": no_window,
            "gateway": {"read": False, "why": no_window, "by_pair": {}},
            "refused": [],
            "by_person": {},
            "logs": {"read": False, "why": no_window},
        }
    assert start.previous is not None
    since = dt.datetime.fromisoformat(str(start.previous["time"]))
    attempts["since"] = _iso(since)
    attempts["gateway"] = {**_gateway_counts(site, start), "log": _gateway_log(sources, since, start.time)}
    found, logs = _refusals(site, sources, since, start.time)
    attempts["refused"] = [r.as_dict() for r in found[:REFUSED_KEPT]]
    attempts["refused_total"] = len(found)
    attempts["by_person"] = auth_log.by_person(found)
    attempts["logs"] = logs
    return attempts


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
    site: LoadedSite, sources: Sources, since: dt.datetime, until: dt.datetime
) -> tuple[list[auth_log.Refusal], dict[str, Any]]:
    hosts = log_shipping_hosts(site.model)
    if not hosts:
        return [], {"read": False, "why": "the site has no production host: no journal is shipped"}
    attribution = auth_log.Attribution.of(site.model)
    found: list[auth_log.Refusal] = []
    problems = []
    for host in hosts:
        try:
            journal = in_window(sources.host_journal(host, since, until), since, until)
        except Unreadable as exc:
            problems.append(str(exc))
            continue
        found += auth_log.refusals(host.name, journal, attribution)
    read = [h.name for h in hosts]
    return sorted(found, key=lambda r: r.time), {
        "read": not problems,
        "why": "; ".join(problems) if problems else f"shipped journals of {', '.join(read)}",
    }


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
