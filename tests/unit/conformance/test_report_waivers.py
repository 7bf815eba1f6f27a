"""Waivers (ACC-7): a failing result of a waived control is 'waived' but visible; an expired waiver fails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from helpers import ROOT, run_cli
from report_fixtures import TODAY, build_report, example_site, signed_waiver_ledger

from provisioner.conformance.verify import VerifyResult
from provisioner.conformance.waivers import apply_waivers, summarise
from provisioner.site.model import Waiver

SIGNED = {"W-1"}  # the waivers whose approver signed them (see releases.decisions.signed_waivers)


def waiver(**fields) -> Waiver:
    data = {
        "id": "W-1",
        "control": "ACC-1",
        "justification": "two-person team: dave is the only admin and also deploys",
        "requester": "dave",
        "approver": "erin",
        "risk": "medium",
        "expires": "2027-01-31",
        "compensating": ["four-eyes approval of every production change", "session logging"],
    }
    return Waiver.model_validate({**data, **fields})


def failing(control: str = "ACC-1", host: str = "prod-app1") -> dict:
    return {"control": control, "check": "c", "host": host, "status": "fail", "expected": "", "observed": "x",
            "evidence": "", "rows": [], "time": "t"}  # fmt: skip


def test_active_waiver_turns_a_failure_into_waived_and_keeps_it_visible():
    site = example_site(waivers=[waiver()])
    rows = apply_waivers([failing(), failing("ACC-2")], site, TODAY, SIGNED)
    acc1 = next(r for r in rows if r["control"] == "ACC-1")
    assert acc1["status"] == "waived" and acc1["waiver"] == "W-1" and acc1["raw_status"] == "fail"
    assert next(r for r in rows if r["control"] == "ACC-2")["status"] == "fail", "other controls are not waived"
    acc7 = next(r for r in rows if r["control"] == "ACC-7")
    assert acc7["status"] == "pass" and "erin" in acc7["observed"]
    summary = summarise(rows)
    assert summary["ACC-1"] == {"pass": 0, "fail": 0, "skip": 0, "waived": 1}


def test_expired_waiver_turns_the_control_back_into_a_failure():
    site = example_site(waivers=[waiver(expires="2026-11-23")])
    rows = apply_waivers([failing()], site, TODAY, SIGNED)
    acc1 = next(r for r in rows if r["control"] == "ACC-1")
    assert acc1["status"] == "fail" and "expired 2026-11-23" in acc1["evidence"]
    assert next(r for r in rows if r["control"] == "ACC-7")["status"] == "fail"
    # the day before it expires, it still holds
    assert apply_waivers([failing()], site, dt.date(2026, 11, 23), SIGNED)[0]["status"] == "waived"


def test_scope_to_person_and_environment():
    """ACC-4's developer check has a host and a person as its subject: both must be the waiver's."""
    site = example_site(waivers=[waiver(control="ACC-4", person="alice", environment="test")])
    rows = apply_waivers(
        [failing("ACC-4", "test-app1,alice"), failing("ACC-4", "test-app1,bob"), failing("ACC-4", "dev-app1,alice")],
        site,
        TODAY,
        SIGNED,
    )
    assert [r["status"] for r in rows if r["control"] == "ACC-4"] == ["waived", "fail", "fail"]


def test_applying_twice_gives_the_same_rows_and_the_expiry_is_judged_each_time():
    site = example_site(waivers=[waiver(expires="2026-12-01")])
    once = apply_waivers([failing()], site, TODAY, SIGNED)
    assert apply_waivers(once, site, TODAY, SIGNED) == once
    later = apply_waivers(once, site, dt.date(2026, 12, 2), SIGNED)
    assert [r["status"] for r in later] == ["fail", "fail"]


def test_verify_summary_counts_waived_and_passes_when_every_failure_is_waived(tmp_path: Path):
    site = example_site(waivers=[waiver()])
    rows = apply_waivers([failing(), {**failing("ACC-5"), "status": "pass"}], site, TODAY, SIGNED)
    result = VerifyResult(tmp_path, rows, pytest_rc=1)
    assert result.ok
    assert result.by_control()["ACC-1"]["waived"] == 1
    expired = apply_waivers(rows, example_site(waivers=[waiver(expires="2026-01-01")]), TODAY, SIGNED)
    assert not VerifyResult(tmp_path, expired, pytest_rc=1).ok


def test_an_unsigned_waiver_waives_nothing_and_fails_acc7():
    rows = apply_waivers([failing()], example_site(waivers=[waiver()]), TODAY, set())
    assert rows[0]["status"] == "fail" and "covers this but is unsigned" in rows[0]["evidence"]
    acc7 = next(r for r in rows if r["control"] == "ACC-7")
    assert acc7["status"] == "fail" and acc7["observed"].startswith("unsigned")


def test_report_shows_waived_results_and_the_waiver(tmp_path: Path):
    payload = {"finished": "t", "controls": {}, "results": [failing("ACC-4", "prod-app1")]}
    unsigned = build_report(example_site(waivers=[waiver(control="ACC-4")]), payload)
    assert next(c for c in unsigned["controls"] if c["id"] == "ACC-4")["status"] == "fail", "nobody signed it"
    site = example_site(waivers=[waiver(control="ACC-4")])
    signed_waiver_ledger(tmp_path, site)
    report = build_report(site, payload, evidence_dir=tmp_path)
    acc4 = next(c for c in report["controls"] if c["id"] == "ACC-4")
    assert acc4["status"] == "waived" and acc4["results"][0]["waiver"] == "W-1"
    assert report["waivers"][0]["state"] == "active" and report["waivers"][0]["waived_results"]
    expired = build_report(example_site(waivers=[waiver(control="ACC-4", expires="2025-01-01")]), payload,
                           evidence_dir=tmp_path)  # fmt: skip
    assert next(c for c in expired["controls"] if c["id"] == "ACC-4")["status"] == "fail"
    assert next(c for c in expired["controls"] if c["id"] == "ACC-7")["status"] == "fail"


@pytest.mark.parametrize("bad", ["duty-waiver-approved-by-its-requester.yml"])
def test_waiver_approved_by_its_requester_is_rejected_at_validation(bad):
    result = run_cli("validate", str(ROOT / "tests" / "sites" / "bad" / bad))
    assert result.rc == 2
    assert "waivers[0].approver" in result.stderr and "someone other than its requester" in result.stderr
