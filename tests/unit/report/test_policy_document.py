"""The Secure Development Policy as its own document (issue 17, item 4): generated from the site file, in plain
English, as Markdown and PDF, through `provision policy` and in every evidence pack."""

from __future__ import annotations

import datetime as dt
import subprocess
from types import SimpleNamespace

from helpers import EXAMPLE, run_cli
from report_fixtures import example_site

from provisioner.report import policy
from provisioner.site.model import AccessGrant, DataAuthorisation, Waiver


def markdown(site) -> str:
    return policy.to_markdown(policy.build(site))


def test_markdown_names_every_environment_person_and_the_path_to_live():
    site = example_site()
    text = markdown(site)
    for env in site.environments:
        assert f"| {env.name} | {env.tier} | {env.description} |" in text
        assert f"| {env.name} | {env.data} |" in text, "each environment's data rule"
    for person in site.people:
        assert f"| {person.name} ({person.full_name}) | {', '.join(person.roles)} |" in text
    assert "dev → test → prod" in text and "deploy identity `deploy`" in text
    assert (
        "needs 1 approval (`provision release approve`) by someone other than its author" in text
        and "erin (Erin Evans)" in text
    )
    assert "| alice (Alice Archer) | developer | full rights (sudo) | log in | — |" in text, "the access matrix"
    assert "dev → test: tcp port(s) 80 to hosts with the role app" in text
    assert "There are no exceptions: every rule applies in full." in text
    assert "approvals may follow within 24 hour(s) of the production deploy instead of before it" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert [h.split(". ", 1)[1] for h in headings] == [
        "Environments and their purpose", "Who may access what", "Data rules", "The path to live", "Approvals",
        "Exceptions", "Emergency fixes", "How the rules are checked",
    ]  # fmt: skip
    assert "test_" not in text and "None" not in text


def test_exceptions_authorisations_and_grants_are_spelled_out():
    waiver = Waiver(
        id="W-7", control="ACC-1", person="alice", environment="prod", justification="on-call cover for the outage",
        requester="alice", approver="erin", risk="high", expires=dt.date(2027, 3, 31), compensating=["session logs"],
    )  # fmt: skip
    refresh = DataAuthorisation.model_validate(
        {"id": "REF-1", "from": "prod", "to": "test", "requester": "carol", "approver": "dave",
         "reason": "reproduce ticket 4711", "scrub_by": "2026-12-01"}
    )  # fmt: skip
    site = example_site(waivers=[waiver])
    site = site.model_copy(update={"test_data": site.test_data.model_copy(update={"authorisations": [refresh]})})
    people = [
        p.model_copy(update={"access": [AccessGrant(environment="prod", level="login", waiver="W-7")]})
        if p.name == "alice"
        else p
        for p in site.people
    ]
    text = markdown(site.model_copy(update={"people": people}))
    assert "| W-7 | ACC-1: No developer or tester account on production hosts | person alice, environment prod |" in (
        text
    )
    assert "| alice (Alice Archer) | erin (Erin Evans) | high | 2027-03-31 | session logs |" in text
    assert (
        "| REF-1 | prod → test | carol (Carol Clark) | dave (Dave Dunn) | reproduce ticket 4711 | 2026-12-01 |" in text
    )
    assert "| alice (Alice Archer) | developer | full rights (sudo) | log in | log in (by exception W-7) |" in text


def test_a_declared_hotfix_rule_is_described_from_a_model_or_a_mapping():
    site = example_site()
    for rule in ({"approvals_within_hours": 4}, SimpleNamespace(approvals_within_hours=4)):
        releases = SimpleNamespace(path=site.releases.path, required_approvals=1, hotfix=rule)
        text = markdown(site.model_copy(update={"releases": releases}))
        assert "approvals may follow within 4 hour(s) of the production deploy instead of before it" in text
        assert "must pass verification there before production" in text
        assert "No emergency-fix rule" not in text
    without = markdown(site.model_copy(update={"releases": site.releases.model_copy(update={"hotfix": None})}))
    assert "No emergency-fix rule is declared: every fix takes the normal path" in without


def test_provision_policy_prints_markdown_and_writes_a_pdf(tmp_path):
    shown = run_cli("policy", str(EXAMPLE))
    assert shown.rc == 0, shown.stderr
    assert shown.stdout.startswith("# Secure Development Policy — Example Ltd")
    assert "example/site.yml, SHA-256 " in shown.stdout, "the policy names the site file it was made from"
    out = tmp_path / "policy.pdf"
    made = run_cli("policy", str(EXAMPLE), "--format", "pdf", "--out", str(out), "--json")
    assert made.rc == 0, made.stderr
    assert made.json == {"site": "example", "format": "pdf", "out": str(out)}
    assert out.read_bytes().startswith(b"%PDF-")
    text = " ".join(subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout.split())
    for phrase in ("Secure Development Policy", "7. Emergency fixes", "dev → test → prod", "erin (Erin Evans)"):
        assert phrase in text, phrase
    md = tmp_path / "policy.md"
    assert run_cli("policy", str(EXAMPLE), "--out", str(md)).rc == 0
    assert md.read_text() == shown.stdout
