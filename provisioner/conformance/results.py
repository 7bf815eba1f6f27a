"""The one record of a conformance check's outcome: written by the pytest plugin, waived, kept in results.json,
read by verify, the history and the evidence pack."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Status = Literal["pass", "fail", "skip", "waived"]


class CheckResult(TypedDict):
    control: str  # catalogue ID, such as NET-2
    check: str  # the check's name in the conformance suite
    host: str  # the subject: a host, a pair of environments, or "site"
    status: Status
    expected: str
    observed: str
    evidence: str  # what was attempted and what came back, at most 4000 characters
    rows: list[dict[str, Any]]  # a table of evidence (per person, per pair, …)
    time: str  # ISO 8601, UTC
    duration: float
    raw_status: NotRequired[Status]  # the status before waivers were applied
    waiver: NotRequired[str]  # the (first) waiver that turned a failure into "waived"
    waivers: NotRequired[list[dict[str, str]]]  # every waiver it took: id, approver, expires, risk
    waiver_notes: NotRequired[list[str]]  # what the waivers did not cover, or why they did not count
