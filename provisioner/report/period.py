"""The verification history over an audit period, as the period report shows it: pure functions of the history's
entries (as `provision verify` appended them), the history check's problems, the site's watch schedules and the
period; nothing here reads a file or a clock.

A control's status at a moment is the verdict of the latest run that covered it, and only while that moment lies
within the control's interval (the shortest watch schedule that covers it) plus the watch grace after that run;
otherwise it is "not verified" — time without a run is never a pass. Entries the history check found edited,
unreadable or wrongly signed are left out (their time shows as not verified); a deleted entry leaves its gap.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.errors import InputError, shown

PASS, FAIL, WAIVED, NOT_VERIFIED = "pass", "fail", "waived", "not verified"
TIMELINE_STATUSES = (PASS, FAIL, WAIVED, NOT_VERIFIED)
DEFAULT_GRACE = 300  # the watch section's default grace: used when the site declares no watch
UNTRUSTED_KINDS = ("edited", "signature", "unreadable")  # lines whose content the period cannot rely on
DATE_HELP = (
    "give YYYY-MM-DD (00:00 UTC) or an ISO date-time such as 2026-01-31T12:00:00Z (UTC unless it names an offset)"
)


# ---- the period --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    start: dt.datetime  # inclusive, UTC
    end: dt.datetime  # exclusive, UTC

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {"from": iso(self.start), "to": iso(self.end), "seconds": int(self.seconds)}


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def parse_moment(text: str, option: str) -> dt.datetime:
    """--from/--to: a date (its 00:00 UTC) or an ISO date-time (UTC unless it carries an offset)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {shown(text)}: not a date; {DATE_HELP}") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse_period(start: str, end: str) -> Period:
    """The period [--from, --to): refused (exit 2) unless both are dates and --from comes before --to."""
    period = Period(parse_moment(start, "--from"), parse_moment(end, "--to"))
    if period.start >= period.end:
        raise InputError(
            f"--from {iso(period.start)} is not before --to {iso(period.end)}; the period runs from --from up to "
            "--to: give a --to later than --from"
        )
    return period


# ---- the runs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One history entry as the period reads it."""

    line: int
    seq: int | None
    time: dt.datetime
    run: str
    trigger: str
    controls: dict[str, str]
    attempts: dict[str, Any] | None = None

    def ref(self) -> dict[str, Any]:
        return {"time": iso(self.time), "run": self.run, "seq": self.seq, "line": self.line}


def _time_of(entry: dict[str, Any]) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(entry.get("time", "")))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def read_runs(
    numbered: Iterable[tuple[int, dict[str, Any]]], problems: Iterable[Any] = ()
) -> tuple[list[Run], list[dict[str, Any]]]:
    """The entries the period can rely on, in time order; and those left out, with why. `problems`: the history
    check's problems (objects with .line and .kind, or dicts with those keys)."""
    untrusted: dict[int, str] = {}
    for problem in problems:
        line, kind, message = _problem_fields(problem)
        if line and kind in UNTRUSTED_KINDS:
            untrusted.setdefault(line, message)
    runs, left_out = [], []
    for line, entry in numbered:
        if line in untrusted:
            left_out.append({"line": line, "run": str(entry.get("run", "")), "why": untrusted[line]})
            continue
        moment = _time_of(entry)
        controls = entry.get("controls")
        if moment is None:
            left_out.append({"line": line, "run": str(entry.get("run", "")), "why": "no time it finished"})
            continue
        seq = entry.get("seq")
        attempts = entry.get("attempts")
        runs.append(
            Run(
                line=line,
                seq=seq if isinstance(seq, int) else None,
                time=moment,
                run=str(entry.get("run", "")),
                trigger=str(entry.get("trigger", "manual")),
                controls={str(k): str(v) for k, v in controls.items()} if isinstance(controls, dict) else {},
                attempts=attempts if isinstance(attempts, dict) else None,
            )
        )
    runs.sort(key=lambda r: (r.time, r.line))
    return runs, left_out


def _problem_fields(problem: Any) -> tuple[int, str, str]:
    if isinstance(problem, dict):
        return int(problem.get("line", 0)), str(problem.get("kind", "")), str(problem.get("message", ""))
    return int(problem.line), str(problem.kind), str(problem.message)


# ---- per control: the timeline ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    start: dt.datetime
    end: dt.datetime
    status: str
    run: str = ""  # the run whose verdict starts it ('' where not verified)

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso(self.start), "end": iso(self.end), "status": self.status, "run": self.run}


def timeline_status(verdict: str) -> str:
    """A run's verdict on the strip: skip (the run covered the control but proved nothing) is not verified."""
    return verdict if verdict in (PASS, FAIL, WAIVED) else NOT_VERIFIED


def timeline(runs: Sequence[Run], control: str, validity_seconds: float, period: Period) -> list[Segment]:
    """The control's status over the period, as consecutive segments covering it from start to end."""
    covering = [r for r in runs if control in r.controls]
    verdicts: list[Segment] = []
    for index, run in enumerate(covering):
        until = run.time + dt.timedelta(seconds=validity_seconds)
        if index + 1 < len(covering):
            until = min(until, covering[index + 1].time)
        status = timeline_status(run.controls[control])
        verdicts.append(Segment(run.time, until, status, run.run if status != NOT_VERIFIED else ""))
    segments: list[Segment] = []
    cursor = period.start
    for seg in verdicts:
        start, end = max(seg.start, period.start), min(seg.end, period.end)
        if end <= start:
            continue
        if start > cursor:
            segments.append(Segment(cursor, start, NOT_VERIFIED))
        segments.append(Segment(start, end, seg.status, seg.run))
        cursor = end
    if cursor < period.end:
        segments.append(Segment(cursor, period.end, NOT_VERIFIED))
    return _merged(segments)


def _merged(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segments:
        if merged and merged[-1].status == seg.status and merged[-1].end == seg.start:
            merged[-1] = Segment(merged[-1].start, seg.end, seg.status, merged[-1].run)
        else:
            merged.append(seg)
    return merged


def shares(segments: Sequence[Segment], period: Period) -> dict[str, float]:
    """Fraction of the period per timeline status."""
    totals = dict.fromkeys(TIMELINE_STATUSES, 0.0)
    for seg in segments:
        totals[seg.status] += (seg.end - seg.start).total_seconds()
    return {status: round(seconds / period.seconds, 6) for status, seconds in totals.items()}


# ---- failure windows ----------------------------------------------------------------------------------------------
def failure_windows(runs: Sequence[Run], control: str, period: Period) -> list[dict[str, Any]]:
    """Every stretch in which runs saw the control failing that overlaps the period: the last run that saw it
    passing before (None when none did), the first that saw it failing (start), the first that saw it passing
    again (end; None while none has), the time to repair (start to end) and the most it can have lasted (last pass
    to end). A window with no end inside the period is open at the end of the period, and says so."""
    windows: list[dict[str, Any]] = []
    last_pass: Run | None = None
    current: dict[str, Any] | None = None
    for run in (r for r in runs if control in r.controls):
        verdict = run.controls[control]
        if verdict == FAIL and current is None:
            current = {"control": control, "last_pass": last_pass, "start": run, "end": None, "runs_failing": 0}
        if verdict == FAIL and current is not None:
            current["runs_failing"] += 1
        if verdict == PASS:
            if current is not None:
                current["end"] = run
                windows.append(current)
                current = None
            last_pass = run
    if current is not None:
        windows.append(current)
    return [_window(w, period) for w in windows if _overlaps(w, period)]


def _overlaps(window: dict[str, Any], period: Period) -> bool:
    start: Run = window["start"]
    end: Run | None = window["end"]
    return start.time < period.end and (end is None or end.time > period.start)


def _window(window: dict[str, Any], period: Period) -> dict[str, Any]:
    start: Run = window["start"]
    end: Run | None = window["end"]
    last_pass: Run | None = window["last_pass"]
    open_at_end = end is None or end.time >= period.end
    repair = (end.time - start.time).total_seconds() if end is not None else None
    at_most = (end.time - last_pass.time).total_seconds() if end is not None and last_pass is not None else None
    return {
        "control": window["control"],
        "last_pass": last_pass.ref() if last_pass else None,
        "start": start.ref(),
        "end": end.ref() if end is not None and not open_at_end else None,
        "repaired_after_period": end.ref() if end is not None and open_at_end else None,
        "open_at_end": open_at_end,
        "began_before_period": start.time < period.start,
        "runs_failing": window["runs_failing"],
        "repair_seconds": repair if not open_at_end else None,
        "repair": duration_words(repair) if repair is not None and not open_at_end else "",
        "at_most_seconds": at_most if not open_at_end else None,
        "at_most": duration_words(at_most) if at_most is not None and not open_at_end else "",
    }


def duration_words(seconds: float) -> str:
    """'3d 4h', '2h 05m', '4m 10s', '12s'."""
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


# ---- scheduled runs -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    name: str
    seconds: int
    controls: list[str] = field(default_factory=list)


def schedule_share(runs: Sequence[Run], schedule: Schedule, period: Period, grace: float) -> dict[str, Any]:
    """How many of the schedule's slots in the period had a run: the period cut into slots of the schedule's
    interval from its start, a slot counting as run when a run with trigger 'watch:<name>' finished in it or up to
    the grace after it; each run fills one slot (the earliest it may). Runs started by hand do not count."""
    slots = int(period.seconds // schedule.seconds)
    trigger = f"watch:{schedule.name}"
    mine = [r for r in runs if r.trigger == trigger and period.start <= r.time < period.end]
    filled: set[int] = set()
    for run in mine:
        offset = (run.time - period.start).total_seconds()
        first = max(0, math.floor((offset - grace) / schedule.seconds) - 1)
        last = min(slots - 1, math.floor(offset / schedule.seconds))
        for slot in range(first, last + 1):
            if slot not in filled and offset < (slot + 1) * schedule.seconds + grace:
                filled.add(slot)
                break
    missed = [slot for slot in range(slots) if slot not in filled]
    return {
        "name": schedule.name,
        "every_seconds": schedule.seconds,
        "controls": list(schedule.controls),
        "expected": slots,
        "ran": len(filled),
        "runs": len(mine),
        "share": round(len(filled) / slots, 6) if slots else None,
        "first_missed": iso(period.start + dt.timedelta(seconds=missed[0] * schedule.seconds)) if missed else None,
    }


# ---- blocked attempts ---------------------------------------------------------------------------------------------
def attempts_summary(runs: Sequence[Run], period: Period) -> dict[str, Any]:
    """The blocked attempts the period's runs collected, summed by pair (gateway deny packets) and by person
    (refused logins and sudo); and the runs that could not read them (no attempts recorded, the gateway's
    counters or the shipped logs unread), with why."""
    by_pair: dict[str, int] = {}
    by_person: dict[str, dict[str, int]] = {}
    refused: list[dict[str, Any]] = []
    unread: list[dict[str, Any]] = []
    in_period = [r for r in runs if period.start <= r.time < period.end]
    for run in in_period:
        attempts = run.attempts
        if attempts is None:
            unread.append({**run.ref(), "what": "attempts", "why": "no attempts recorded with this run"})
            continue
        gateway = _dict(attempts.get("gateway"))
        logs = _dict(attempts.get("logs"))
        if gateway.get("read") is True:
            for pair, packets in (gateway.get("by_pair") or {}).items():
                by_pair[str(pair)] = by_pair.get(str(pair), 0) + _count(packets)
        else:
            unread.append({**run.ref(), "what": "gateway", "why": str(gateway.get("why") or "not read")})
        if logs.get("read") is True:
            for person, counts in (attempts.get("by_person") or {}).items():
                mine = by_person.setdefault(str(person), {"ssh": 0, "sudo": 0})
                for what in ("ssh", "sudo"):
                    mine[what] += _count(counts.get(what) if isinstance(counts, dict) else 0)
            refused.extend(r for r in attempts.get("refused") or [] if isinstance(r, dict))
        else:
            unread.append({**run.ref(), "what": "logs", "why": str(logs.get("why") or "not read")})
    return {
        "runs": len(in_period),
        "by_pair": dict(sorted(by_pair.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_person": dict(sorted(by_person.items(), key=lambda kv: (-(kv[1]["ssh"] + kv[1]["sudo"]), kv[0]))),
        "refused": refused,
        "unread": unread,
        "runs_unread": len({u["line"] for u in unread}),
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# ---- the whole period ---------------------------------------------------------------------------------------------
def build(
    numbered: Iterable[tuple[int, dict[str, Any]]],
    problems: Sequence[Any],
    period: Period,
    *,
    control_ids: Sequence[str],
    intervals: dict[str, int],
    grace: float = DEFAULT_GRACE,
    schedules: Sequence[Schedule] = (),
    questions: Sequence[tuple[str, str, Sequence[str]]] = (),
) -> dict[str, Any]:
    """The period report's data. `control_ids`: the catalogue's IDs, in order (the controls shown are those a
    schedule covers or a run recorded; all of them when neither); `intervals`: intervals_by_control(site);
    `questions`: (id, question, control IDs)."""
    runs, left_out = read_runs(numbered, problems)
    seen = {cid for r in runs for cid in r.controls} | set(intervals)
    shown_ids = [cid for cid in control_ids if cid in seen] + sorted(seen - set(control_ids))
    shown_ids = shown_ids or list(control_ids)
    controls: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    for cid in shown_ids:
        validity = intervals.get(cid, 0) + grace
        segments = timeline(runs, cid, validity, period)
        controls.append(
            {
                "id": cid,
                "interval_seconds": intervals.get(cid),
                "valid_seconds": validity,
                "segments": [s.as_dict() for s in segments],
                "share": shares(segments, period),
            }
        )
        windows.extend(failure_windows(runs, cid, period))
    windows.sort(key=lambda w: (w["start"]["time"], w["control"]))
    history_ok = not problems
    check = {
        "ok": history_ok,
        "entries": len(runs) + len(left_out),
        "problems": [_problem_dict(p) for p in problems],
        "left_out": left_out,
    }
    by_id = {c["id"]: c for c in controls}
    answered = [_question(q, by_id, windows, history_ok) for q in questions]
    return {
        **period.as_dict(),
        "grace_seconds": grace,
        "history": check,
        "runs_in_period": sum(1 for r in runs if period.start <= r.time < period.end),
        "controls": controls,
        "schedules": [schedule_share(runs, s, period, grace) for s in schedules],
        "windows": windows,
        "attempts": attempts_summary(runs, period),
        "questions": answered,
        "verdict": _verdict(controls, windows, history_ok),
    }


def _problem_dict(problem: Any) -> dict[str, Any]:
    line, kind, message = _problem_fields(problem)
    return {"line": line, "kind": kind, "message": message, "text": f"line {line}: {message}" if line else message}


def _worst(shares_of: Sequence[dict[str, float]]) -> str:
    if any(s.get(FAIL) for s in shares_of):
        return "at risk"
    if any(s.get(NOT_VERIFIED) for s in shares_of):
        return "partly proven"
    if any(s.get(WAIVED) for s in shares_of):
        return "accepted risk"
    return "proven"


def _question(
    question: tuple[str, str, Sequence[str]], by_id: dict[str, dict[str, Any]], windows: list[dict[str, Any]], ok: bool
) -> dict[str, Any]:
    qid, text, ids = question
    mine = [by_id[cid] for cid in ids if cid in by_id]
    missing = [cid for cid in ids if cid not in by_id]
    status = _worst([c["share"] for c in mine]) if mine else "not checked"
    if missing and status in ("proven", "accepted risk"):
        status = "partly proven"
    failing = [w for w in windows if w["control"] in ids]
    parts = []
    for control in mine:
        share = control["share"]
        parts.append(
            f"{control['id']}: pass {share[PASS]:.1%}, fail {share[FAIL]:.1%}, waived {share[WAIVED]:.1%}, "
            f"not verified {share[NOT_VERIFIED]:.1%}"
        )
    parts += [f"{cid}: never verified" for cid in missing]
    if failing:
        parts.append(f"{len(failing)} failure window{'s' if len(failing) != 1 else ''} (see below)")
    if not ok and status != "at risk":
        status = "history broken"
        parts.append("the verification history does not hold, so this period cannot be shown to have held")
    return {"id": qid, "question": text, "controls": list(ids), "status": status, "answer": "; ".join(parts) + "."}


def _verdict(controls: list[dict[str, Any]], windows: list[dict[str, Any]], ok: bool) -> dict[str, str]:
    if not ok:
        return {
            "status": "history broken",
            "text": "the verification history does not hold (see the history check): the period cannot be shown to "
            "have held",
        }
    worst = _worst([c["share"] for c in controls])
    texts = {
        "at risk": f"controls failed during the period: {len(windows)} failure window(s)",
        "partly proven": "no failure seen, but part of the period was not verified (gaps: no run, or runs too late)",
        "accepted risk": "every control verified throughout; some only as waived (accepted risk)",
        "proven": "every control passed throughout the period, with no gap and no failure",
    }
    return {"status": worst, "text": texts[worst]}
