"""The report's content and formats, from a recorded verify run (no lab): HTML sections, JUnit, OSCAL, the
diagram's differences, the release ledger, the access matrix's reading of the hosts, the trend plot."""

from __future__ import annotations

import html
import json
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from report_fixtures import build_report, example_site, live_as_declared

from provisioner.backends.base import Attachment
from provisioner.conformance import history
from provisioner.conformance.controls import CONTROLS
from provisioner.report import access_matrix, releases
from provisioner.report.collect import QUESTIONS
from provisioner.report.junit import render_junit
from provisioner.report.oscal import render_oscal
from provisioner.report.render_html import render_html


def test_html_answers_the_three_questions_first_then_every_control_and_section():
    page = render_html(build_report())
    positions = [page.index(f'id="{qid.lower()}"') for qid, _, _ in QUESTIONS]
    assert positions == sorted(positions) and positions[0] < page.index('id="controls"')
    for _, question, _ in QUESTIONS:
        assert question.replace("'", "&#39;") in page
    for cid in CONTROLS:
        assert f'id="control-{cid}"' in page
    for section in ("diagram", "reachability", "access", "releases", "waivers", "trend", "policy"):
        assert f'id="{section}"' in page, section
    assert "Secure Development Policy — environment separation" in page
    assert "<svg" in page, "the diagram and the trend are inline"


def test_q1_is_proven_by_the_failed_attempts_and_q2_q3_are_not_checked_without_their_controls():
    report = build_report()
    q1, q2, q3 = report["questions"]
    assert q1["status"] == "proven"
    assert q1["attempts"] and all(
        a["destination_env"] == "prod" and a["observed"] == "rejected" for a in q1["attempts"]
    )
    assert {e["control"] for e in q1["evidence"]} == {"ACC-2", "ACC-3", "NET-2"}
    assert q2["status"] == "not checked" and q3["status"] == "not checked"


def test_q1_is_at_risk_when_a_developer_key_is_accepted_in_prod():
    payload = json.loads((Path(__file__).resolve().parents[2] / "data").joinpath("report", "results.json").read_text())
    payload["results"][4]["status"] = "fail"  # ACC-2 on prod-app1
    q1 = build_report(payload=payload)["questions"][0]
    assert q1["status"] == "at risk"


def test_q2_and_q3_use_data_and_change_results_when_the_run_has_them(tmp_path):
    payload = json.loads((Path(__file__).resolve().parents[2] / "data").joinpath("report", "results.json").read_text())
    for cid in ("DATA-1", "DATA-2", "CHG-2", "CHG-4"):
        row = {"control": cid, "check": "c", "host": "test-db1", "status": "pass", "expected": "e", "observed": "o"}
        payload["results"].append({**row, "evidence": "", "rows": [], "time": "t"})
    payload["controls"]["DATA-1"] = {
        "id": "DATA-1", "title": "No live PII in dev or test", "severity": "critical",
        "iso2022": ["ISO/IEC 27001:2022 A.8.31", "A.8.33"], "iso2013": "A.12.1.4",
    }  # fmt: skip
    (tmp_path / "releases.jsonl").write_text(LEDGER)
    report = build_report(payload=payload, evidence_dir=tmp_path)
    _, q2, q3 = report["questions"]
    assert q2["status"] == "proven" and q3["status"] == "proven"
    assert q3["release"]["id"] == "r2" and q3["release"]["approvals"][0]["actor"] == "erin"
    data1 = next(c for c in report["controls"] if c["id"] == "DATA-1")
    assert data1["title"] == CONTROLS["DATA-1"].title and "A.8.33" in data1["iso2022"], "the catalogue names it"


LEDGER = "\n".join(
    json.dumps(e)
    for e in [
        {"seq": 1, "time": "2026-11-01T10:00:00Z", "event": "create", "release": "r1", "actor": "alice",
         "digest": "sha256:" + "a" * 64, "artifact": "shop-1.0.tar.gz", "result": "ok"},
        {"seq": 2, "time": "2026-11-01T10:05:00Z", "event": "deploy", "release": "r1", "actor": "deploy", "env": "dev",
         "digest": "sha256:" + "a" * 64, "result": "ok"},
        {"seq": 3, "time": "2026-11-02T09:00:00Z", "event": "create", "release": "r2", "actor": "bob",
         "digest": "sha256:" + "b" * 64, "artifact": "shop-1.1.tar.gz", "result": "ok"},
        {"seq": 4, "time": "2026-11-02T09:10:00Z", "event": "deploy", "release": "r2", "actor": "deploy", "env": "test",
         "digest": "sha256:" + "b" * 64, "result": "ok"},
        {"seq": 5, "time": "2026-11-02T11:00:00Z", "event": "approve", "release": "r2", "actor": "erin",
         "digest": "sha256:" + "b" * 64, "result": "ok"},
        {"seq": 6, "time": "2026-11-02T12:00:00Z", "event": "deploy", "release": "r2", "actor": "deploy", "env": "prod",
         "digest": "sha256:" + "b" * 64, "result": "ok"},
    ]
) + "\n"  # fmt: skip


def test_release_ledger_reader_is_tolerant(tmp_path):
    assert releases.read_ledger(tmp_path).summary == "no releases recorded"
    (tmp_path / "releases.jsonl").write_text(LEDGER + "not json\n" + json.dumps({"seq": 9}) + "\n")
    ledger = releases.read_ledger(tmp_path)
    assert [r.id for r in ledger.releases] == ["r1", "r2"]
    r2 = ledger.releases[1]
    assert r2.author == "bob" and r2.digest == "sha256:" + "b" * 64 and r2.artifact == "shop-1.1.tar.gz"
    assert r2.reached == {"test": "2026-11-02T09:10:00Z", "prod": "2026-11-02T12:00:00Z"}
    assert r2.approvals == [{"actor": "erin", "time": "2026-11-02T11:00:00Z"}]
    assert len(ledger.problems) == 2 and "line 7" in ledger.problems[0]
    page = render_html(build_report(evidence_dir=tmp_path))
    assert "shop-1.1.tar.gz" in page and "erin (2026-11-02T11:00:00Z)" in page


def test_junit_has_one_suite_per_checked_control_and_failures_where_they_failed():
    payload = json.loads((Path(__file__).resolve().parents[2] / "data").joinpath("report", "results.json").read_text())
    payload["results"][3]["status"] = "fail"  # ACC-1
    report = build_report(payload=payload)
    root = ET.fromstring(render_junit(report).split("\n", 1)[1])
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {c["id"] for c in report["controls"] if c["status"] != "not checked"}
    assert suites["ACC-1"].get("failures") == "1" and suites["ACC-1"].find("testcase/failure") is not None
    assert suites["ACC-6"].get("skipped") == "1"
    assert sum(int(s.get("tests")) for s in suites.values()) == len(report["results"])


def test_oscal_assessment_results_shape():
    payload = json.loads((Path(__file__).resolve().parents[2] / "data").joinpath("report", "results.json").read_text())
    payload["results"][3]["status"] = "fail"
    report = build_report(payload=payload)
    doc = render_oscal(report)["assessment-results"]
    for key in ("uuid", "metadata", "import-ap", "results"):
        assert key in doc
    assert set(doc["metadata"]) >= {"title", "last-modified", "version", "oscal-version"}
    assert re.fullmatch(r"1\.1\.\d+", doc["metadata"]["oscal-version"])
    result = doc["results"][0]
    assert set(result) >= {"uuid", "title", "description", "start", "reviewed-controls", "observations", "findings"}
    observation_ids = {o["uuid"] for o in result["observations"]}
    assert len(observation_ids) == len(report["results"])
    for item in [doc, result, *result["observations"], *result["findings"]]:
        uuid.UUID(item["uuid"])
    for obs in result["observations"]:
        assert obs["methods"] == ["TEST"] and obs["collected"]
    states = {f["target"]["target-id"]: f["target"]["status"]["state"] for f in result["findings"]}
    assert states["acc-1"] == "not-satisfied" and states["acc-2"] == "satisfied"
    for finding in result["findings"]:
        assert finding["target"]["type"] == "objective-id"
        assert {r["observation-uuid"] for r in finding["related-observations"]} <= observation_ids


def test_diagram_marks_an_undeclared_host_a_missing_host_and_a_moved_address():
    site = example_site()
    live = [a for a in live_as_declared(site) if a.machine != "test-db1"]
    live = [Attachment(a.segment, a.machine, "10.90.30.99" if a.machine == "prod-db1" else a.address, True)
            for a in live]  # fmt: skip
    live.append(Attachment("dev", "stray-box", "10.90.10.77", False, "vethX"))
    report = build_report(site, attachments=live)
    diffs = report["live"]["differences"]
    assert "stray-box on segment dev at 10.90.10.77: live but not in the site file" in diffs
    assert "test-db1: declared in the site file, not running live" in diffs
    assert "prod-db1: live address 10.90.30.99, declared 10.90.30.21" in diffs
    svg = html.unescape(report["diagram_svg"])
    assert "stray-box" in svg and "NOT IN SITE FILE" in svg and "declared, not running" in svg
    assert next(c for c in report["controls"] if c["id"] == "NET-4")["status"] == "fail"
    clean = build_report(site)
    assert clean["live"]["differences"] == []
    assert next(c for c in clean["controls"] if c["id"] == "NET-4")["status"] == "pass"
    for vlan, cidr in ((10, "10.90.10.0/24"), (20, "10.90.20.0/24"), (30, "10.90.30.0/24")):
        assert f"VLAN {vlan}" in clean["diagram_svg"] and cidr in clean["diagram_svg"]
    drawn = html.unescape(clean["diagram_svg"])
    assert "dev → test: allowed 80" in drawn and "dev → prod: denied (6 probes)" in drawn
    assert "10.90.10.1" in drawn and "no live leg" not in drawn, "the gateway's live leg on each segment"


SUDO_ADMIN = """Matching Defaults entries for dave on prod-app1:
    env_reset

User dave may run the following commands on prod-app1:
    (ALL) NOPASSWD: ALL
"""
SUDO_DEPLOY = """User deploy may run the following commands on prod-app1:
    (root) NOPASSWD: /usr/local/sbin/pv-deploy
"""


def test_access_levels_follow_what_the_hosts_say():
    allow = ["pv-login"]
    account = {"user": "dave", "shell": "/bin/bash", "keys": 1, "groups": ["pv-login"], "sudo": SUDO_ADMIN}
    assert access_matrix.account_level(account, allow).level == "sudo"
    deploy = {**account, "user": "deploy", "sudo": SUDO_DEPLOY}
    assert access_matrix.account_level(deploy, allow).level == "deploy"
    login = {**account, "user": "carol", "sudo": "User carol is not allowed to run sudo on test-app1.\n"}
    assert access_matrix.account_level(login, allow).level == "login"
    assert access_matrix.account_level({**login, "groups": ["users"]}, allow).level == "none"
    assert access_matrix.account_level({**account, "keys": 0}, allow).level == "none"
    readings = {
        "prod-app1": {"allowgroups": allow, "accounts": [account, deploy, {**login, "user": "mallory"}]},
        "dev-app1": {"allowgroups": allow, "accounts": [{**account, "user": "alice"}]},
    }
    matrix = access_matrix.build_matrix(example_site(), readings, {"prod-db1": "timeout"}, None)
    assert matrix.cells["dave"]["prod"] == "sudo" and matrix.cells["deploy"]["prod"] == "deploy"
    assert matrix.cells["alice"] == {"dev": "sudo", "test": "none", "prod": "none"}
    assert matrix.undeclared == ["mallory"] and matrix.cells["mallory"]["prod"] == "login"
    robot = {**account, "user": "provision"}
    with_robot = access_matrix.build_matrix(
        example_site(), {"prod-app1": {"allowgroups": allow, "accounts": [robot]}}, {}, None
    )
    assert with_robot.cells["provision"]["prod"] == "sudo" and with_robot.undeclared == []
    assert matrix.as_dict()["hypervisor"] is None and matrix.unreadable == {"prod-db1": "timeout"}
    hyper = [{"person": "alice", "environment": "prod", "roles": []},
             {"person": "dave", "environment": "prod", "roles": ["PVEVMUser"]}]  # fmt: skip
    with_hyper = access_matrix.build_matrix(example_site(), readings, {}, hyper)
    assert with_hyper.as_dict()["hypervisor"]["dave"]["prod"] == ["PVEVMUser"]


def test_trend_plot_is_svg_with_a_line_per_status_seen(tmp_path):
    from provisioner.workspace.site_state import SiteState

    state = SiteState("example", tmp_path / "example")
    assert "no verify runs recorded" in history.trend_svg(history.read_history(state))
    for fails in (3, 1, 0):
        rows = [{"control": "NET-2", "status": "pass"}] * 10 + [{"control": "ACC-1", "status": "fail"}] * fails
        history.record_run(state, tmp_path / f"run{fails}", rows)
    entries = history.read_history(state)
    assert [e["counts"]["fail"] for e in entries] == [3, 1, 0] and entries[0]["failed_controls"] == ["ACC-1"]
    svg = ET.fromstring(history.trend_svg(entries))
    ns = "{http://www.w3.org/2000/svg}"
    lines = {p.get("class"): p.get("points").split() for p in svg.iter(f"{ns}polyline")}
    assert set(lines) == {"trend-pass", "trend-fail"} and len(lines["trend-fail"]) == 3
    ys = [float(point.split(",")[1]) for point in lines["trend-fail"]]
    assert ys[0] < ys[1] < ys[2], "fewer failures draw lower"


def test_report_without_a_verify_run_says_what_to_run(tmp_path):
    from helpers import EXAMPLE, run_cli

    result = run_cli("report", str(EXAMPLE), env={"PROVISION_STATE_DIR": str(tmp_path)})
    assert result.rc == 1 and "run `provision verify` first" in result.stderr
    assert run_cli("report", "a", "b", env={"PROVISION_STATE_DIR": str(tmp_path)}).rc == 2


def test_doc1_fails_when_a_host_could_not_be_read():
    assert next(c for c in build_report()["controls"] if c["id"] == "DOC-1")["status"] == "pass"
    report = build_report(unreadable={"prod-db1": "ssh: connection timed out"})
    doc1 = next(c for c in report["controls"] if c["id"] == "DOC-1")
    assert doc1["status"] == "fail" and "prod-db1" in doc1["results"][0]["observed"]


def test_hotfixes_are_listed_on_their_own(tmp_path):
    (tmp_path / "releases.jsonl").write_text(LEDGER)
    assert "No emergency fix was released." in render_html(build_report(evidence_dir=tmp_path))
    entries = [json.loads(line) for line in LEDGER.splitlines()]
    entries[2]["hotfix"] = True  # r2
    (tmp_path / "releases.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    page = render_html(build_report(evidence_dir=tmp_path))
    section = page.split('id="hotfixes"', 1)[1].split("<h3", 1)[0]
    assert "<td>r2</td><td>bob</td>" in section and "<td>r1</td>" not in section
