"""The evidence pack and the policy document on access networks (issue 18): which network reaches what, that an
admins_only network is for administrators alone, the NET-2 rows from an access network in the reachability matrix
and in the first question's attempts, the networks each environment accepts SSH from, the access networks on the
network diagram."""

from __future__ import annotations

import copy

import pytest
from helpers import example_with_access_networks, write_site
from report_fixtures import build_report, example_site, live_as_declared, recorded_results

from provisioner.report import diagram, policy
from provisioner.report.render_html import render_html
from provisioner.site.load import load_site
from provisioner.site.model import Site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return load_site(write_site(tmp_path_factory.mktemp("access"), example_with_access_networks())).model


def office_rows() -> list[dict]:
    """NET-2 rows as test_reachability_from_each_access_network records them, from the office's probe."""
    base = {"source": "probe@office", "source_env": "office", "icmp": "", "tries": 1}
    return [
        {**base, "destination": "dev-app1", "destination_env": "dev", "port": 22, "expected": "open",
         "observed": "connected", "detail": "the path is open", "ok": True},
        {**base, "destination": "prod-db1", "destination_env": "prod", "port": 22, "expected": "blocked",
         "observed": "rejected", "detail": "refused with an ICMP error; the gateway's counter deny_office_to_prod rose "
         "by 1 for 1 refused attempts: corroborates", "ok": True},
        {**base, "destination": "gateway (leg on office)", "destination_env": "office", "port": 22,
         "expected": "blocked", "observed": "rejected", "detail": "refused", "ok": True},
    ]  # fmt: skip


def with_office_result() -> dict:
    payload = copy.deepcopy(recorded_results())
    payload["results"].append(
        {"control": "NET-2", "check": "test_reachability_from_each_access_network", "host": "office",
         "status": "pass", "expected": "SSH open to every host of dev, test; every other path refused",
         "observed": "3/3 paths as declared", "evidence": "", "rows": office_rows(),
         "time": "2026-11-24T06:00:01+00:00", "duration": 0.1}
    )  # fmt: skip
    return payload


def test_the_policy_says_where_people_sit_and_what_each_network_reaches(site: Site):
    text = policy.to_markdown(policy.build(site))
    office = "| office | 10.90.50.0/24 | developers, testers and administrators | dev, test |"
    assert f"{office} developers' and testers' desks |" in text
    assert "| admins | 10.90.60.0/28 | administrators only | dev, test, prod | the administrators' desks |" in text
    assert "admins is for people with the administrator role alone (dave (Dave Dunn))" in text
    assert "An access network that developers or testers sit on never reaches production." in text
    assert "is for the provisioning controller and the administrators only" in text
    assert "from the management network 10.90.0.0/24 and from the access networks below that reach their" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert len(headings) == 8, "the sections keep their numbers"


def test_the_policy_of_a_site_without_access_networks_says_so():
    text = policy.to_markdown(policy.build(example_site()))
    assert "The site declares no access network" in text and "| access network |" not in text
    assert "Hosts accept administration (SSH) only from the management network 10.90.0.0/24." in text


def test_the_pack_carries_the_access_networks_and_their_net2_rows(site: Site):
    report = build_report(site=site, payload=with_office_result())
    rows = [r for r in report["reachability"] if r["source_env"] == "office"]
    assert [(r["destination"], r["expected"], r["observed"]) for r in rows] == [
        ("dev-app1", "open", "connected"), ("prod-db1", "blocked", "rejected"),
        ("gateway (leg on office)", "blocked", "rejected"),
    ]  # fmt: skip
    q1 = next(q for q in report["questions"] if q["id"] == "Q1")
    assert any(a["source_env"] == "office" and a["destination_env"] == "prod" for a in q1["attempts"]), (
        "the first question's attempts include the developers' office trying production"
    )
    assert report["policy"]["access_networks"][0] == {
        "name": "office", "cidr": "10.90.50.0/24", "description": "developers' and testers' desks",
        "reaches": ["dev", "test"], "admins_only": False, "vlan": 50,
    }  # fmt: skip
    assert report["access"]["ssh_from"] == {
        "dev": ["management 10.90.0.0/24", "access network office 10.90.50.0/24",
                "access network admins 10.90.60.0/28 (admins only)"],
        "test": ["management 10.90.0.0/24", "access network office 10.90.50.0/24",
                 "access network admins 10.90.60.0/28 (admins only)"],
        "prod": ["management 10.90.0.0/24", "access network admins 10.90.60.0/28 (admins only)"],
    }  # fmt: skip
    assert report["live"]["differences"] == []
    assert '"seg_office"' in report["diagram_dot"] and "access network" in report["diagram_dot"]
    page = render_html(report)
    assert "office 10.90.50.0/24 reaches dev, test on SSH only" in page
    assert "admins 10.90.60.0/28 reaches dev, test, prod on SSH only, admins only" in page
    assert "admins (10.90.60.0/28) → dev, test, prod (administrators only)" in page
    assert "access network admins 10.90.60.0/28 (admins only)" in page


def test_an_access_network_not_found_live_is_a_difference(site: Site):
    live = [a for a in live_as_declared(site) if a.segment != "office"]
    found = diagram.differences(site, {"mgmt", "dev", "test", "prod", "admins"}, live)
    assert found == ["segment office: declared in the site file, not found live"]
    dot = diagram.to_dot(site, {"mgmt", "dev", "test", "prod", "admins"}, live, [], found)
    assert "office (access network)" in dot and "NOT FOUND LIVE" in dot


def test_the_example_pack_says_nothing_of_access_networks():
    report = build_report()
    assert report["policy"]["access_networks"] == []
    assert not any(r.get("source_env") == "office" for r in report["reachability"])
    assert all(networks == ["management 10.90.0.0/24"] for networks in report["access"]["ssh_from"].values())
    page = render_html(report)
    assert "each access network" not in page and "from the access networks" not in page
