"""A waived failure is an accepted risk, never a proof (issue 18, item 5): the auditor's questions read
"accepted risk (waiver W, approved by A, expires D)" wherever a check they rest on was waived — in the report's data,
the HTML, the PDF and OSCAL alike — and a waiver that does not cover every failure leaves the answer "at risk"."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_report, example_site, recorded_results, signed_waiver_ledger

from provisioner.report import policy
from provisioner.report.junit import render_junit
from provisioner.report.oscal import render_oscal
from provisioner.report.render_html import render_html
from provisioner.report.render_pdf import render_pdf
from provisioner.site.model import Site, Waiver

VERDICT = "accepted risk (waiver W-1, approved by erin, expires 2027-01-31)"


def acc2_waiver(**fields: Any) -> Waiver:
    data = {"id": "W-1", "control": "ACC-2", "environment": "dev", "requester": "dave", "approver": "erin",
            "justification": "the development host's sshd is being replaced this week", "risk": "medium",
            "expires": "2027-01-31", "compensating": ["keys checked by hand on dev-app1"]}  # fmt: skip
    return Waiver.model_validate({**data, **fields})


def payload_with(control: str, rows: list[dict[str, Any]], host: str) -> dict[str, Any]:
    """The recorded run with the first result of `control` failing, its evidence rows given."""
    payload = recorded_results()
    result = next(r for r in payload["results"] if r["control"] == control)
    result.update(status="fail", host=host, rows=rows, observed="as the rows say")
    return payload


def acc2_dev_failure() -> dict[str, Any]:
    """alice's key did not work on dev-app1 (the positive control); every production host refused it."""
    return payload_with(
        "ACC-2",
        [{"host": "dev-app1", "user": "alice", "expected": "accepted", "ok": False},
         {"host": "prod-app1", "user": "root", "expected": "refused", "refused": True, "ok": True}],
        "alice",
    )  # fmt: skip


def report_for(site: Site, payload: dict[str, Any], evidence: Path | None) -> dict[str, Any]:
    if evidence is not None:
        signed_waiver_ledger(evidence, site)
    return build_report(site, payload, evidence_dir=evidence)


def q(report: dict[str, Any], qid: str) -> dict[str, Any]:
    return next(x for x in report["questions"] if x["id"] == qid)


@pytest.fixture(scope="module")
def waived_acc2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    site = example_site(waivers=[acc2_waiver()])
    return report_for(site, acc2_dev_failure(), tmp_path_factory.mktemp("evidence"))


def test_a_waived_acc2_failure_outside_production_is_an_accepted_risk_in_q1_not_proven(waived_acc2):
    q1 = q(waived_acc2, "Q1")
    assert q1["status"] == "accepted risk"
    assert q1["answer"].startswith(VERDICT + ": a check below failed and its failure is waived, not fixed")
    assert "proven" not in q1["status"] and "proven" not in q1["answer"] and not q1["answer"].startswith("No.")
    assert [w["id"] for w in q1["waivers"]] == ["W-1"]
    acc2 = next(c for c in waived_acc2["controls"] if c["id"] == "ACC-2")
    assert acc2["status"] == "waived" and acc2["accepted_risk"] == VERDICT
    assert q(waived_acc2, "Q2")["status"] != "accepted risk", "only the questions that rest on ACC-2"


def test_without_the_approvers_signature_the_same_failure_is_at_risk():
    report = report_for(example_site(waivers=[acc2_waiver()]), acc2_dev_failure(), None)
    assert q(report, "Q1")["status"] == "at risk"


def test_the_html_and_the_pdf_say_accepted_risk_in_q1(waived_acc2, tmp_path):
    page = render_html(waived_acc2)
    q1 = page[page.index('id="q1"') : page.index('id="q2"')]
    assert '<span class="status status-accepted-risk">accepted risk</span> ' + VERDICT in q1
    assert "proven" not in q1
    assert 'status-accepted-risk">' + VERDICT + "</span>" in page, "the ACC-2 control says it too"
    assert "1 failed result waived, not passed" in page
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render_pdf(page))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    q1_text = flat[flat.index("Q1.") : flat.index("Q2.")]
    assert VERDICT in q1_text and "proven" not in q1_text


def test_oscal_says_not_satisfied_with_the_accepted_risk(waived_acc2):
    result = render_oscal(waived_acc2)["assessment-results"]["results"][0]
    acc2 = next(f for f in result["findings"] if f["target"]["target-id"] == "acc-2")
    assert acc2["target"]["status"] == {"state": "not-satisfied", "reason": "other", "remarks": VERDICT}
    assert acc2["description"].startswith(VERDICT)
    (risk,) = result["risks"]
    assert risk["status"] == "deviation-approved" and VERDICT in risk["statement"]
    assert acc2["related-risks"] == [{"risk-uuid": risk["uuid"]}]
    questions = {p["name"]: p for p in result["props"]}
    assert questions["auditor-question-q1"]["value"] == "accepted risk"
    assert questions["auditor-question-q1"]["remarks"].startswith(VERDICT)
    waived = [o for o in result["observations"] if {"name": "status", "ns": o["props"][0]["ns"], "value": "waived"}
              in o["props"]]  # fmt: skip
    assert len(waived) == 1 and any(p["name"] == "waiver" and p["value"] == "W-1" for p in waived[0]["props"])


def test_a_test_scoped_net2_waiver_leaves_a_dev_to_prod_connection_at_risk(tmp_path):
    """The security review's case: a NET-2 waiver for `test` (handed in as it was once written; the site file
    refuses it now) must not turn a dev -> prod connection into anything but a failure."""
    payload = payload_with(
        "NET-2",
        [{"source": "dev-app1", "source_env": "dev", "destination": "test-app1", "destination_env": "test",
          "port": 80, "expected": "open", "observed": "rejected", "ok": False},
         {"source": "dev-app1", "source_env": "dev", "destination": "prod-app1", "destination_env": "prod",
          "port": 22, "expected": "blocked", "observed": "connected", "ok": False}],
        "dev-app1",
    )  # fmt: skip
    handed = Waiver.model_validate(
        {"id": "W-1", "control": "NET-2", "environment": "test", "requester": "dave", "approver": "erin",
         "justification": "the test environment's flows are being rebuilt", "risk": "low", "expires": "2027-01-31"}
    )  # fmt: skip
    report = report_for(example_site(waivers=[handed]), payload, tmp_path / "evidence")
    q1 = q(report, "Q1")
    assert q1["status"] == "at risk" and q1["answer"].startswith("YES")
    connected = [a for a in q1["attempts"] if a["observed"] == "connected"]
    assert connected and not any(a.get("waiver") for a in connected)
    net2 = next(c for c in report["controls"] if c["id"] == "NET-2")
    assert net2["status"] == "fail" and net2["accepted_risk"] == ""
    finding = next(
        f for f in render_oscal(report)["assessment-results"]["results"][0]["findings"]
        if f["target"]["target-id"] == "net-2"
    )  # fmt: skip
    assert finding["target"]["status"] == {"state": "not-satisfied"}


def test_a_waiver_of_another_control_leaves_q1_proven(tmp_path):
    """Accepted risk is reported only where the questions rest on a waived check: an ACC-5 waiver leaves Q1's proof."""
    payload = payload_with("ACC-5", [], "test-db1")
    waiver = acc2_waiver(control="ACC-5", environment="test")
    report = report_for(example_site(waivers=[waiver]), payload, tmp_path / "evidence")
    assert q(report, "Q1")["status"] == "proven"
    assert next(c for c in report["controls"] if c["id"] == "ACC-5")["status"] == "waived"
    assert re.search(r"accepted risk \(waiver W-1, approved by erin, expires 2027-01-31\)", render_html(report))


def test_an_expired_waiver_is_at_risk_again(tmp_path):
    site = example_site(waivers=[acc2_waiver(expires=dt.date(2026, 11, 1))])
    report = report_for(site, acc2_dev_failure(), tmp_path / "evidence")
    assert q(report, "Q1")["status"] == "at risk"


def test_junit_and_the_policy_say_it_too(waived_acc2):
    """JUnit keeps a waived result out of its failures but says why; the policy (Markdown and PDF) names the
    waiver's exact scope and that an exception is an accepted risk, never a pass."""
    junit = render_junit(waived_acc2)
    assert f"WAIVED, {VERDICT}: the check failed; a waiver accepts the failure" in junit
    text = policy.to_markdown(policy.build(example_site(waivers=[acc2_waiver()]), "example/site.yml"))
    assert "| W-1 | ACC-2: A developer's SSH key is refused by every production host | environment dev |" in text
    assert "A result set aside by an exception is reported as an accepted risk, never as passed." in text
    assert "Two rules have no exception in production" in text
