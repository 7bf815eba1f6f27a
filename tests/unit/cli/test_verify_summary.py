"""`provision verify`'s summary never calls a waived control passed (issue 18, item 5): its status reads ACCEPTED
RISK, each waived result is listed with its waiver, approver and expiry, and --json gives the same verdicts. The
suite itself needs a lab; here the engine hands the command a run whose results were waived as a real run's are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import EXAMPLE
from report_fixtures import TODAY, example_site
from typer.testing import CliRunner

from provisioner.cli import app, common
from provisioner.conformance.verify import VerifyResult
from provisioner.conformance.waivers import apply_waivers
from provisioner.engine import evidence
from provisioner.site.model import Waiver

VERDICT = "accepted risk (waiver W-1, approved by erin, expires 2027-01-31)"


def result(control: str, host: str, status: str) -> dict[str, Any]:
    return {"control": control, "check": f"check_of_{control.lower().replace('-', '_')}", "host": host,
            "status": status, "expected": "", "observed": "", "evidence": "", "rows": [], "time": "t"}  # fmt: skip


@pytest.fixture
def waived_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    waiver = Waiver.model_validate(
        {"id": "W-1", "control": "ACC-5", "host": "test-db1", "requester": "dave", "approver": "erin",
         "justification": "sshd on test-db1 is replaced this week", "risk": "low", "expires": "2027-01-31"}
    )  # fmt: skip
    rows = apply_waivers(
        [result("ACC-5", "test-db1", "fail"), result("ACC-5", "dev-app1", "pass"), result("NET-3", "dev-app1", "pass")],
        example_site(waivers=[waiver]), TODAY, {"W-1"},
    )  # fmt: skip
    run = VerifyResult(tmp_path, rows, pytest_rc=1)
    monkeypatch.setattr(evidence, "verify", lambda *_a, **_k: evidence.Verification(run, [], None))
    monkeypatch.setattr(common.out, "width", 250)  # the console was made before this test: one row, one line


def invoke(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "250"}).invoke(app, ["verify", str(EXAMPLE), *args], catch_exceptions=False)


@pytest.mark.usefixtures("waived_run")
def test_the_table_says_accepted_risk_and_names_the_waiver():
    out = invoke()
    assert out.exit_code == 0, out.output  # a waived failure does not fail the run …
    acc5 = next(line for line in out.output.splitlines() if "│ ACC-5" in line)
    assert "ACCEPTED RISK" in acc5 and "PASS" not in acc5, acc5  # … but it is not a pass either
    assert "PASS" in next(line for line in out.output.splitlines() if "│ NET-3" in line)
    assert f"ACC-5 check_of_acc_5[test-db1]: failed; waived, not passed: {VERDICT}" in " ".join(out.output.split())


@pytest.mark.usefixtures("waived_run")
def test_json_gives_the_same_verdicts():
    out = invoke("--json")
    data = json.loads(out.stdout)
    assert data["ok"] is True and data["verdicts"]["ACC-5"] == "waived" and data["verdicts"]["NET-3"] == "pass"
    assert data["controls"]["ACC-5"] == {"pass": 1, "fail": 0, "skip": 0, "waived": 1}
    assert data["accepted_risks"] == [
        {"control": "ACC-5", "check": "check_of_acc_5", "host": "test-db1", "verdict": VERDICT}
    ]
