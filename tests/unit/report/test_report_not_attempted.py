"""An answer that rests on an attempt the run did not make is never "proven": out of scope, it says so and who
decided it; undeclared, it says that too (issue 18, item 4)."""

from __future__ import annotations

from typing import Any

from report_fixtures import build_report, example_site, recorded_results

from provisioner.conformance import scope


def with_acc2_skipped(out_of_scope: dict[str, str] | None) -> dict[str, Any]:
    payload = recorded_results()
    result = next(r for r in payload["results"] if r["control"] == "ACC-2")
    result.update(status="skip", host="alice", evidence=f"Skipped: {scope.NOT_ATTEMPTED}no private key for alice")
    if out_of_scope:
        result["out_of_scope"] = out_of_scope
    else:
        result["not_attempted"] = True
    return payload


def q1(report: dict[str, Any]) -> dict[str, Any]:
    return next(x for x in report["questions"] if x["id"] == "Q1")


def test_an_out_of_scope_attempt_makes_q1_partly_proven_naming_the_decision():
    report = build_report(example_site(), with_acc2_skipped({"reason": "no keys at this site", "decided_by": "dave"}))
    answer = q1(report)
    assert answer["status"] == "partly proven"
    assert "ACC-2 alice not attempted, out of scope (no keys at this site; decided by dave)" in answer["answer"]


def test_an_undeclared_one_says_it_was_not_declared():
    answer = q1(build_report(example_site(), with_acc2_skipped(None)))
    assert answer["status"] == "partly proven"
    assert "ACC-2 alice not attempted and not declared out of scope" in answer["answer"]


def test_with_every_attempt_made_q1_is_proven():
    assert q1(build_report(example_site(), recorded_results()))["status"] == "proven"
