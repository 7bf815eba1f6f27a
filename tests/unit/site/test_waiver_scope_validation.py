"""Waiver scopes in the site file (issue 18, item 5): the narrower keys load; a NET-2 or ACC-2 waiver that could
reach production is refused at load, exit 2, naming the waiver's key; the approver may not develop or test in any
environment the scope names. (Each refusal's file, line, key path and allowed values: tests/sites/bad, the
duty-waiver-* and design-waiver-* files.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, example_data, run_cli, write_site

from provisioner.errors import SiteError
from provisioner.site.load import load_site

TODAY = dt.date(2026, 11, 24)
BAD = ROOT / "tests" / "sites" / "bad"


def with_waiver(tmp_path: Path, **fields: Any) -> Path:
    data = example_data()
    data["waivers"] = [
        {"id": "W-1", "justification": "legacy batch job between the environments", "requester": "dave",
         "approver": "erin", "risk": "medium", "expires": "2027-01-31", **fields}
    ]  # fmt: skip
    return write_site(tmp_path / "s", data)


@pytest.mark.parametrize(
    "scope",
    [
        {"control": "NET-2", "source": "dev", "destination": "test", "port": 80},
        {"control": "NET-2", "environment": "test", "destination": "dev"},
        {"control": "NET-2", "host": "test-app1", "destination": "dev", "port": "9/udp"},
        {"control": "ACC-2", "person": "alice", "environment": "dev"},
        {"control": "ACC-2", "host": "dev-app1"},
        {"control": "ACC-5", "host": "test-db1"},
        {"control": "NET-3"},  # other controls may still be waived site-wide
    ],
    ids=lambda scope: "-".join(str(v) for v in scope.values()),
)
def test_scopes_outside_production_load(tmp_path: Path, scope: dict[str, Any]):
    waiver = load_site(with_waiver(tmp_path, **scope), today=TODAY).model.waivers[0]
    assert waiver.control == scope["control"]
    if "port" in scope:
        assert waiver.port in ("80/tcp", "9/udp")


def test_the_reviewers_waiver_is_refused_at_load_naming_its_key(tmp_path: Path):
    """'NET-2, environment test' hid a dev -> prod connection once; now it cannot even be declared: it has no
    destination, so it could cover test -> prod."""
    site = with_waiver(tmp_path, control="NET-2", environment="test")
    with pytest.raises(SiteError) as caught:
        load_site(site, today=TODAY)
    (problem,) = caught.value.problems
    assert problem.path == "waivers[0].control" and problem.line is not None
    assert problem.message == (
        "without destination, this NET-2 waiver could cover a result in production (prod); NET-2 is never waived in "
        "production: no waiver may hide a path into or out of production; allowed: source (or environment or host) "
        "and destination, naming what lies outside production (dev, test)"
    )
    result = run_cli("validate", str(site))
    assert result.rc == 2 and "Traceback" not in result.stderr
    assert "waivers[0].control: without destination, this NET-2 waiver could cover" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("scope", "path", "phrase"),
    [
        ({"control": "NET-2", "source": "dev", "destination": "prod"}, "waivers[0].destination", "NET-2 is never"),
        ({"control": "NET-2", "source": "prod", "destination": "test"}, "waivers[0].source", "NET-2 is never"),
        ({"control": "ACC-2", "environment": "prod"}, "waivers[0].environment", "ACC-2 is never"),
        ({"control": "ACC-2", "host": "prod-app1"}, "waivers[0].host", "ACC-2 is never"),
        ({"control": "ACC-2"}, "waivers[0].control", "ACC-2 is never"),
    ],
)
def test_production_scopes_of_net2_and_acc2_are_refused(tmp_path: Path, scope: dict[str, Any], path: str, phrase: str):
    with pytest.raises(SiteError) as caught:
        load_site(with_waiver(tmp_path, **scope), today=TODAY)
    assert [p.path for p in caught.value.problems] == [path]
    assert f"{phrase} waived in production" in caught.value.problems[0].message


def test_the_approver_may_not_develop_or_test_where_the_scope_reaches(tmp_path: Path):
    """carol tests in test: she may not approve a NET-2 waiver into test, though its source is dev."""
    data = example_data()
    carol = next(p for p in data["people"] if p["name"] == "carol")
    carol["roles"] = ["tester", "approver"]
    data["waivers"] = [
        {"id": "W-1", "control": "NET-2", "environment": "dev", "destination": "test", "approver": "carol",
         "justification": "legacy batch job between the environments", "requester": "dave", "risk": "medium",
         "expires": "2027-01-31"}
    ]  # fmt: skip
    site = write_site(tmp_path / "s", data)
    with pytest.raises(SiteError) as caught:
        load_site(site, today=TODAY)
    (problem,) = caught.value.problems
    assert problem.path == "waivers[0].approver"
    assert "'carol' is a developer or tester of environment 'test' and cannot approve its exceptions" in problem.message
    # a host names its environment: test-db1 is hers to test, dev-app1 is not
    data["waivers"][0] = {**data["waivers"][0], "control": "ACC-5", "host": "test-db1"}
    del data["waivers"][0]["environment"], data["waivers"][0]["destination"]
    with pytest.raises(SiteError) as caught:
        load_site(write_site(tmp_path / "t", data), today=TODAY)
    assert "tester of environment 'test'" in caught.value.problems[0].message
    data["waivers"][0]["host"] = "dev-app1"
    assert load_site(write_site(tmp_path / "u", data), today=TODAY).model.waivers[0].approver == "carol"


def test_the_bad_corpus_has_a_file_for_each_new_refusal():
    names = {p.stem for p in BAD.glob("*waiver*.yml")}
    assert {
        "duty-waiver-net2-into-production", "duty-waiver-net2-scoped-to-test-only", "duty-waiver-net2-unscoped",
        "duty-waiver-net2-out-of-production", "duty-waiver-net2-environment-production",
        "duty-waiver-net2-from-production-host", "duty-waiver-acc2-person-only", "duty-waiver-acc2-production",
        "duty-waiver-acc2-production-host", "design-waiver-unknown-host", "design-waiver-unknown-source",
        "design-waiver-unknown-destination", "design-waiver-port-on-acc5", "schema-waiver-port-70000",
        "schema-waiver-port-icmp",
    } <= names  # fmt: skip
