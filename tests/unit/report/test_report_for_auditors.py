"""The report is written for auditors (issue 17, item 4): every check has a plain-English title and no function
name reaches the HTML, the PDF or OSCAL; the PDF lays out on A4 with every column on the page, long values
wrapped — checked on the words' boxes as pdftotext reads them, and shown to fail with the stylesheet's wrapping
rules taken out."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import pytest
from report_fixtures import build_report, example_site, recorded_results, signed_waiver_ledger

from provisioner.conformance.titles import CHECK_TITLES, check_title
from provisioner.report import policy
from provisioner.report.oscal import render_oscal
from provisioner.report.render_html import render_html
from provisioner.report.render_pdf import render_pdf
from provisioner.site.model import Host, Waiver

CHECKS = Path(__file__).resolve().parents[3] / "provisioner" / "conformance" / "checks"
FUNCTION_NAME = re.compile(r"\btest_[a-z0-9_]+")
A4 = (595.28, 841.89)  # points


def suite_checks() -> dict[str, str]:
    """Every check function of the conformance suite, with the control its marker names (read from the source)."""
    found = {}
    for path in sorted(CHECKS.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                controls = [
                    d.args[0].value
                    for d in node.decorator_list
                    if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "control"
                ]
                found[node.name] = controls[0] if controls else ""
    return found


def pdf_text(pdf: bytes, tmp_path: Path, *options: str) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", *options, str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_every_check_of_the_suite_has_a_plain_english_title():
    checks = suite_checks()
    assert len(checks) >= 25 and all(checks.values()), "every check carries its control marker"
    missing = sorted(set(checks) - set(CHECK_TITLES))
    assert not missing, f"checks without a title in provisioner/conformance/titles.py: {missing}"
    for name in [*checks, "waiver_is_valid", "live_network_matches_site_file", "evidence_pack_generated"]:
        title = check_title(name)
        assert title[0].isupper() and " " in title and "_" not in title, (name, title)
    assert check_title("test_some_future_check") == "Some future check", "unknown checks are named by their words"


@pytest.fixture(scope="module")
def every_check_report(tmp_path_factory) -> dict:
    """A report with a result for every check of the suite (and of the recorded run, whose names are older), a
    failure, a waiver and its ACC-7 row."""
    payload = recorded_results()
    for name, control in suite_checks().items():
        payload["results"].append(
            {"control": control, "check": name, "host": "prod-app1", "status": "pass", "expected": "as designed",
             "observed": "as designed", "evidence": "read from the host", "rows": [], "time": "2026-11-24T06:00:00Z"}
        )  # fmt: skip
    payload["results"][-1]["status"] = "fail"
    waiver = Waiver(
        id="W-1", control="ACC-2", environment="dev", justification="two-person team during the migration",
        requester="dave", approver="erin", risk="medium", expires=dt.date(2027, 1, 1), compensating=["session logging"],
    )  # fmt: skip
    failing_acc2 = next(r for r in payload["results"] if r["control"] == "ACC-2")
    failing_acc2["status"] = "fail"  # the positive control failed: alice's key does not work in development
    failing_acc2["rows"] = [{"host": "dev-app1", "user": "alice", "expected": "accepted", "ok": False}]
    site = example_site(waivers=[waiver])
    evidence = tmp_path_factory.mktemp("evidence")
    signed_waiver_ledger(evidence, site)  # erin signed it: it waives the ACC-2 failure
    return build_report(site, payload=payload, evidence_dir=evidence)


def test_no_function_name_in_html_pdf_or_oscal(every_check_report, tmp_path):
    report = every_check_report
    names = {r["check"] for r in report["results"]}
    assert set(suite_checks()) <= names and "waiver_is_valid" in names
    page = render_html(report)
    outputs = {
        "HTML": page,
        "PDF": pdf_text(render_pdf(page), tmp_path),
        "OSCAL": json.dumps(render_oscal(report), ensure_ascii=False),
    }
    for what, text in outputs.items():
        assert not FUNCTION_NAME.findall(text), (
            f"{what} shows function names: {sorted(set(FUNCTION_NAME.findall(text)))}"
        )
    for name in suite_checks():
        assert CHECK_TITLES[name].replace("'", "&#39;") in page, name
    titles = [o["title"] for o in render_oscal(report)["assessment-results"]["results"][0]["observations"]]
    assert (
        "ACC-2: "
        + CHECK_TITLES["test_developer_key_refused_by_production_and_accepted_in_development"]
        + (" (prod-app1)")
        in titles
    )
    assert any(w["waived_results"] for w in report["waivers"]) and not FUNCTION_NAME.findall(str(report["waivers"]))


# ---- the PDF on A4 ----------------------------------------------------------------------------------------
WORD = re.compile(r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>')
PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)


def layout_problems(pdf: bytes, tmp_path: Path, sentinels: list[str]) -> list[str]:
    """Words outside their page's box, pages that are not A4, and long values the text does not hold in full
    (pdftotext drops words that lie wholly off the page, so those are found by their absence)."""
    problems = []
    pages = PAGE.findall(pdf_text(pdf, tmp_path, "-bbox"))
    assert pages, "pdftotext read no page"
    for number, (width, height, body) in enumerate(pages, start=1):
        w, h = float(width), float(height)
        if abs(w - A4[0]) > 1 or abs(h - A4[1]) > 1:
            problems.append(f"page {number} is {w}x{h} points, not A4")
        for x_min, y_min, x_max, y_max, word in WORD.findall(body):
            if float(x_min) < 0 or float(y_min) < 0 or float(x_max) > w or float(y_max) > h:
                problems.append(f"page {number}: {word[:30]!r} at x {x_min}..{x_max}, y {y_min}..{y_max}")
    flat = re.sub(r"[\s\-]", "", pdf_text(pdf, tmp_path))  # lines wrapped in a value, and pdftotext's hyphen joins
    problems += [f"not on any page in full: {s[:40]}…" for s in sentinels if re.sub(r"[\s\-]", "", s) not in flat]
    return problems


LONG_HOSTS = [f"production-app-server-{i:03d}" for i in range(60)]
LONG_DIGEST = "sha256:" + "0123456789abcdef" * 4
LONG_EVIDENCE = "nft-ruleset:" + "".join(f"chain{i}/drop" for i in range(120)) + " END-OF-EVIDENCE"


def long_values_report() -> dict:
    report = build_report()
    row = report["results"][0]
    row["host"] = ",".join(LONG_HOSTS)
    row["observed"] = f"running {LONG_DIGEST}, expected {LONG_DIGEST.replace('0123', '3210')}"
    row["evidence"] = LONG_EVIDENCE
    report["controls"][0]["hosts"] = LONG_HOSTS
    report["policy"]["environments"][2]["hosts"] = LONG_HOSTS
    report["releases"]["releases"] = [
        {"id": "r7", "digest": LONG_DIGEST, "artifact": "shop-" + "x" * 90 + ".tar.gz", "author": "bob",
         "created": "2026-11-02T09:00:00Z", "reached": {"dev": "2026-11-02T09:10:00Z"}, "verified": {}, "failed": [],
         "approvals": [{"actor": "erin", "time": "2026-11-02T11:00:00Z"}]}
    ]  # fmt: skip
    report["questions"][2]["release"] = report["releases"]["releases"][0]
    return report


SENTINELS = [LONG_HOSTS[-1], LONG_DIGEST, LONG_EVIDENCE[-60:], "x" * 90 + ".tar.gz"]


def unwrapped(page: str) -> str:
    """The page with the stylesheet's wrapping rules taken out: the layout before issue 17."""
    cut = re.sub(r"/\* wrap:.*?/\* end wrap \*/", "", page, flags=re.S)
    assert cut != page, "the wrapping rules are marked in the template"
    return cut


def test_report_pdf_keeps_every_column_and_long_value_on_a4(tmp_path):
    page = render_html(long_values_report())
    assert layout_problems(render_pdf(page), tmp_path, SENTINELS) == []
    old = layout_problems(render_pdf(unwrapped(page)), tmp_path, SENTINELS)
    assert old, "without the wrapping rules the same data runs off the page: the check can fail"


def test_policy_pdf_keeps_long_values_on_a4(tmp_path):
    many = [Host(name=name, environment="prod", address=f"10.90.30.{100 + i}") for i, name in enumerate(LONG_HOSTS)]
    waiver = Waiver(
        id="W-" + "9" * 40, control="ACC-1", person="alice", environment="prod",
        justification="on-call cover: " + "x" * 120, requester="alice", approver="erin", risk="high",
        expires=dt.date(2027, 1, 1), compensating=["session-recording:" + "y" * 80],
    )  # fmt: skip
    site = example_site(hosts=[*example_site().hosts, *many], waivers=[waiver])
    pdf = render_pdf(policy.to_html(policy.build(site, "example/site.yml, SHA-256 " + "e" * 64)))
    assert layout_problems(pdf, tmp_path, [LONG_HOSTS[-1], "x" * 120, "y" * 80, "e" * 64]) == []
