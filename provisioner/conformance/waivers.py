"""Waivers (ACC-7) applied to conformance results.

A waiver covers exactly the failures its scope names (see site.model.Waiver for what each scope key means). A
failing result is made of failures: each failing evidence row (a row with `ok` false — for ACC-2's older rows,
`refused` false), or, where no evidence row says which part failed, the result as a whole. The result becomes
"waived" — still listed, with its waivers, but no longer a failure — only when every one of its failures lies inside
the scope of an active waiver of its control (several narrow waivers may share the work); otherwise it stays a
failure and its evidence names the failures no waiver covered. Each failing evidence row a waiver covers carries
that waiver's id.

NET-2 and ACC-2 failures in production are never waived, whatever waiver is handed in (site validation refuses
such waivers too): a failure whose place is unknown counts as production. An expired waiver waives nothing and its
ACC-7 row fails, so the control turns back into a failure. `provision verify` and `provision report` both summarise
through `apply_waivers`, so they agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from provisioner.site.model import Site, Waiver
from provisioner.site.waiver_scope import NEVER_WAIVED_IN_PRODUCTION, PATH_CONTROLS, production_envs

WAIVER_CONTROL = "ACC-7"
SCOPE_KEYS = ("person", "environment", "host", "source", "destination", "port")
LISTED = 8  # failures named in a note before "and N more"


def waiver_state(waiver: Waiver, today: dt.date, signed: Collection[str]) -> str:
    """active | expired | unsigned (its approver has not signed its present content: `provision waiver approve`)
    | invalid (approved by its own requester: site validation refuses it too)."""
    if waiver.approver == waiver.requester:
        return "invalid"
    if waiver.expires < today:
        return "expired"
    return "active" if waiver.id in signed else "unsigned"


# ---- the failures inside a result ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """One failure of a result, located as far as its evidence says: None where it does not say."""

    row: int | None  # index of the failing evidence row; None: the result as a whole
    person: str | None = None
    environment: str | None = None  # of the subject host; for a path, its source
    host: str | None = None  # the subject host; for a path, the host the probe ran from
    source: str | None = None  # paths only
    destination: str | None = None
    destination_host: str | None = None
    port: str | None = None  # "80/tcp", "9/udp"

    def words(self) -> str:
        if self.source is not None or self.destination is not None:
            where = f"{self.host or self.source or '?'} -> {self.destination_host or self.destination or '?'}"
            port = f":{self.port}" if self.port else ""
            return f"{where}{port} ({self.source or '?'} -> {self.destination or '?'})"
        parts = [p for p in (self.person, self.host) if p]
        place = f" in {self.environment}" if self.environment else ""
        what = ", ".join(parts) or "the result"
        return f"{what}{place}" + (" (no evidence row says where)" if self.row is None else "")


def _port(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}/tcp"
    text = str(value)
    return text if "/" in text else f"{text}/tcp"


def _failing(evidence_row: dict[str, Any]) -> bool:
    if "ok" in evidence_row:
        return evidence_row["ok"] is False
    return evidence_row.get("refused") is False  # ACC-2 rows before they carried `ok`


def failures_of(site: Site, row: dict[str, Any]) -> list[Failure]:
    """The failures of a failing result: its failing evidence rows, or the result as a whole."""
    hosts = {h.name: h.environment for h in site.hosts}
    people = {p.name for p in site.people}
    envs = {e.name for e in site.environments}
    subjects = [part for part in str(row.get("host", "")).split(",") if part]
    subject_hosts = [s for s in subjects if s in hosts]
    subject_people = [s for s in subjects if s in people]
    subject_host = subject_hosts[0] if len(subject_hosts) == 1 else None
    subject_person = subject_people[0] if len(subject_people) == 1 else None
    is_path = row.get("control") in PATH_CONTROLS
    found = []
    for index, evidence in enumerate(row.get("rows") or []):
        if not isinstance(evidence, dict) or not _failing(evidence):
            continue
        if is_path or "destination_env" in evidence:
            source_host = evidence.get("source") if evidence.get("source") in hosts else subject_host
            source = evidence.get("source_env")
            found.append(
                Failure(
                    index,
                    person=subject_person,
                    environment=str(source) if source in envs else None,
                    host=source_host,
                    source=str(source) if source in envs else None,
                    destination=str(evidence["destination_env"]) if evidence.get("destination_env") in envs else None,
                    destination_host=str(evidence.get("destination")) if evidence.get("destination") else None,
                    port=_port(evidence.get("port")),
                )
            )
            continue
        host = evidence.get("host") if evidence.get("host") in hosts else subject_host
        person = evidence.get("person") if evidence.get("person") in people else subject_person
        if person is None and evidence.get("user") in people:
            person = evidence.get("user")
        env = evidence.get("environment") if evidence.get("environment") in envs else hosts.get(str(host))
        found.append(Failure(index, person=person, environment=env, host=host))
    if found:
        return found
    env = hosts.get(str(subject_host)) if subject_host else None
    return [Failure(None, person=subject_person, environment=env, host=subject_host, source=env if is_path else None)]


def covers(waiver: Waiver, failure: Failure) -> bool:
    """Whether the failure lies inside the waiver's scope: every scope key the waiver gives matches it."""
    return all(getattr(waiver, key) is None or getattr(waiver, key) == getattr(failure, key) for key in SCOPE_KEYS)


def never_waived(site: Site, control: str, failure: Failure) -> bool:
    """A NET-2 or ACC-2 failure in production (or somewhere unknown, which may be production)."""
    if control not in NEVER_WAIVED_IN_PRODUCTION:
        return False
    production = production_envs(site)
    if not production:
        return False
    if control in PATH_CONTROLS:
        return any(end is None or end in production for end in (failure.source, failure.destination))
    return failure.environment is None or failure.environment in production


def waiver_covers(site: Site, waiver: Waiver, row: dict[str, Any]) -> bool:
    """Whether this one waiver's scope covers every failure of a result row (none of them never waived)."""
    if row.get("control") != waiver.control:
        return False
    return all(covers(waiver, f) and not never_waived(site, waiver.control, f) for f in failures_of(site, row))


# ---- applying them -----------------------------------------------------------------------------------------
def _listing(failures: list[Failure]) -> str:
    named = "; ".join(f.words() for f in failures[:LISTED])
    return named + (f"; and {len(failures) - LISTED} more" if len(failures) > LISTED else "")


def _waiver_fact(waiver: Waiver) -> dict[str, str]:
    return {"id": waiver.id, "approver": waiver.approver, "expires": waiver.expires.isoformat(), "risk": waiver.risk}


def _judge(site: Site, row: dict[str, Any], today: dt.date, signed: Collection[str]) -> list[str]:
    """Waive a failing row in place if every failure of it is covered; the notes its evidence gains."""
    control = str(row["control"])
    mine = [w for w in site.waivers if w.control == control]
    if not mine:
        return []
    failures = failures_of(site, row)
    notes = []
    covered_by: dict[int, Waiver] = {}
    refused: dict[int, list[str]] = {}
    for waiver in mine:
        inside = [i for i, f in enumerate(failures) if covers(waiver, f)]
        if not inside:
            continue
        state = waiver_state(waiver, today, signed)
        if state != "active":
            notes.append(
                f"waiver '{waiver.id}' covers this but is {state}"
                + (f" (expired {waiver.expires.isoformat()})" if state == "expired" else "")
            )
            continue
        for i in inside:
            if never_waived(site, control, failures[i]):
                refused.setdefault(i, []).append(waiver.id)
            else:
                covered_by.setdefault(i, waiver)
    if refused:
        shown = [failures[i] for i in refused]
        ids = ", ".join(sorted({w for ids in refused.values() for w in ids}))
        notes.append(f"waiver {ids} not applied to {_listing(shown)}: {NEVER_WAIVED_IN_PRODUCTION[control]}")
    if covered_by and len(covered_by) == len(failures):
        used = {w.id for w in covered_by.values()}
        row["status"] = "waived"
        row["waivers"] = [_waiver_fact(w) for w in mine if w.id in used]
        row["waiver"] = row["waivers"][0]["id"]
    elif covered_by:
        left = [f for i, f in enumerate(failures) if i not in covered_by]
        notes.append(
            f"waivers cover {len(covered_by)} of {len(failures)} failures; not covered, so the result still fails: "
            f"{_listing(left)}"
        )
    for i, waiver in covered_by.items():
        index = failures[i].row
        if index is not None:
            row["rows"][index]["waiver"] = waiver.id
    return notes


def _fresh(original: dict[str, Any]) -> dict[str, Any]:
    """A copy of a result as the suite recorded it: earlier waiver decisions and notes taken out."""
    row = dict(original)
    raw = row.get("raw_status", row["status"])
    row["raw_status"] = raw
    row["status"] = raw
    row.pop("waiver", None)
    row.pop("waivers", None)
    old_notes = "\n".join(row.pop("waiver_notes", None) or [])
    evidence = str(row.get("evidence", ""))
    if old_notes and evidence.endswith(old_notes):
        row["evidence"] = evidence[: -len(old_notes)].rstrip("\n")
    if isinstance(row.get("rows"), list):
        row["rows"] = [{k: v for k, v in r.items() if k != "waiver"} if isinstance(r, dict) else r for r in row["rows"]]
    return row


def apply_waivers(
    rows: list[dict[str, Any]], site: Site, today: dt.date | None, signed: Collection[str]
) -> list[dict[str, Any]]:
    """New rows: failures covered by active waivers become 'waived'; one ACC-7 row per waiver is added. A waiver
    is active only when its approver signed its present content (`signed`: see releases.decisions).

    Idempotent: the suite's own status is kept as `raw_status`, waiver notes as `waiver_notes`, and ACC-7 rows from
    an earlier pass are replaced, so results already summarised can be summarised again (e.g. by the report, days
    later).
    """
    today = today or dt.datetime.now(dt.UTC).date()
    out: list[dict[str, Any]] = []
    for original in rows:
        if original.get("origin") == "waivers":
            continue
        row = _fresh(original)
        if row["raw_status"] == "fail":
            notes = _judge(site, row, today, signed)
            if notes:
                row["waiver_notes"] = notes
                row["evidence"] = "\n".join([str(row.get("evidence", "")), *notes]).strip()
        out.append(row)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for waiver in site.waivers:
        state = waiver_state(waiver, today, signed)
        status = "pass" if state == "active" else "fail"
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
                "evidence": f"waiver {waiver.id} for {waiver.control} ({waiver.scope_words()}), risk {waiver.risk}: "
                f"{waiver.justification}; compensating: {', '.join(waiver.compensating) or 'none recorded'}",
                "rows": [],
                "time": now,
                "origin": "waivers",
            }
        )
    return out


def accepted_waivers(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The waivers the waived rows among `rows` rest on, each once: id, approver, expires, risk."""
    facts: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.get("status") != "waived":
            continue
        for fact in row.get("waivers") or [{"id": str(row.get("waiver", "?"))}]:
            facts.setdefault(str(fact.get("id")), fact)
    return list(facts.values())


def accepted_risk(rows: list[dict[str, Any]]) -> str:
    """How waived results read wherever a verdict is given: 'accepted risk (waiver W, approved by A, expires D)',
    each waiver once; '' when none of the rows is waived."""
    return accepted_risk_words(accepted_waivers(rows))


def accepted_risk_words(facts: list[dict[str, str]]) -> str:
    """'accepted risk (waiver W, approved by A, expires D; ...)' for waivers given as id, approver, expires."""
    if not facts:
        return ""
    named = "; ".join(
        f"waiver {f.get('id')}, approved by {f.get('approver', '?')}, expires {f.get('expires', '?')}" for f in facts
    )
    return f"accepted risk ({named})"


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts per control: pass, fail, skip, and waived where any result is waived."""
    summary: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = summary.setdefault(row["control"], {"pass": 0, "fail": 0, "skip": 0})
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return summary


def control_status(counts: dict[str, int]) -> str:
    """fail | waived (a failure is an accepted risk: never 'pass') | pass | skip."""
    if counts.get("fail"):
        return "fail"
    if counts.get("waived"):
        return "waived"
    if counts.get("pass"):
        return "pass"
    return "skip"
