"""A waiver covers exactly the failures its scope names (issue 18, item 5): a result is waived only when every
failing evidence row lies inside an active waiver's scope, the evidence names the rows no waiver covered, and NET-2
and ACC-2 failures in production are never waived — even when a waiver that site validation would refuse is handed
in directly."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from report_fixtures import TODAY, example_site

from provisioner.conformance.waivers import accepted_risk, apply_waivers, failures_of, waiver_covers
from provisioner.releases.decisions import waiver_digest
from provisioner.site.model import Waiver

NEVER_NET2 = "NET-2 is never waived in production"
NEVER_ACC2 = "ACC-2 is never waived in production"


def waiver(**fields: Any) -> Waiver:
    data = {
        "id": "W-1",
        "control": "NET-2",
        "justification": "legacy batch job between the environments",
        "requester": "dave",
        "approver": "erin",
        "risk": "medium",
        "expires": "2027-01-31",
        "compensating": ["traffic logged at the gateway"],
    }
    return Waiver.model_validate({**data, **fields})


def signed(*waivers: Waiver) -> set[str]:
    return {w.id for w in waivers}


def probe(destination: str, port: int | str, ok: bool, source: str = "dev-app1") -> dict[str, Any]:
    """A NET-2 evidence row as test_reachability_from_each_environment records it."""
    envs = {"dev": "dev", "test": "test", "prod": "prod"}
    return {
        "source": source, "source_env": envs[source.split("-")[0]], "destination": destination,
        "destination_env": envs[destination.split("-")[0]], "port": port,
        "expected": "blocked", "observed": "rejected" if ok else "connected", "ok": ok,
    }  # fmt: skip


def net2(*rows: dict[str, Any], source: str = "dev-app1") -> dict[str, Any]:
    return {"control": "NET-2", "check": "test_reachability_from_each_environment", "host": source,
            "status": "fail", "expected": "", "observed": "", "evidence": "paths not as declared",
            "rows": list(rows), "time": "t"}  # fmt: skip


def acc2(*rows: dict[str, Any], person: str = "alice") -> dict[str, Any]:
    return {"control": "ACC-2", "check": "test_developer_key_refused_by_production_and_accepted_in_development",
            "host": person, "status": "fail", "expected": "", "observed": "", "evidence": "", "rows": list(rows),
            "time": "t"}  # fmt: skip


def attempt(host: str, ok: bool, user: str = "alice") -> dict[str, Any]:
    return {"host": host, "user": user, "expected": "accepted" if host.startswith("dev") else "refused", "ok": ok}


def judged(rows: list[dict[str, Any]], *waivers: Waiver, signed_ids: set[str] | None = None) -> list[dict]:
    site = example_site(waivers=list(waivers))
    applied = apply_waivers(rows, site, TODAY, signed(*waivers) if signed_ids is None else signed_ids)
    return [r for r in applied if r.get("origin") != "waivers"]


# ---- the security review's finding: a test-scoped NET-2 waiver hid a dev -> prod connection ----------------
def test_a_test_scoped_net2_waiver_does_not_hide_a_dev_to_prod_failure():
    result = net2(probe("test-app1", 80, ok=False), probe("prod-app1", 22, ok=False))
    (row,) = judged([result], waiver(environment="test"))
    assert row["status"] == "fail" and "waiver" not in row, "environment is the source: dev, not test"
    assert [r.get("waiver") for r in row["rows"]] == [None, None]
    # the waiver the reviewer meant — dev to test — covers only the dev -> test row; dev -> prod keeps it failing
    (row,) = judged([result], waiver(source="dev", destination="test"))
    assert row["status"] == "fail" and row["raw_status"] == "fail"
    assert [r.get("waiver") for r in row["rows"]] == ["W-1", None], "only the covered evidence row is marked"
    assert "waivers cover 1 of 2 failures; not covered, so the result still fails: " in row["evidence"]
    assert "dev-app1 -> prod-app1:22/tcp (dev -> prod)" in row["evidence"]


def test_a_waiver_scoped_to_test_covers_test_as_source_only():
    from_test = net2(probe("dev-app1", 80, ok=False, source="test-app1"), source="test-app1")
    into_test = net2(probe("test-app1", 80, ok=False))
    rows = judged([from_test, into_test], waiver(environment="test", destination="dev"))
    assert [r["status"] for r in rows] == ["waived", "fail"]


def test_every_failing_row_must_be_covered_and_narrow_waivers_may_share_the_work():
    result = net2(probe("test-app1", 80, ok=False), probe("test-db1", 5432, ok=False), probe("prod-app1", 22, True))
    web = waiver(source="dev", destination="test", port=80)
    (row,) = judged([result], web)
    assert row["status"] == "fail" and "dev-app1 -> test-db1:5432/tcp (dev -> test)" in row["evidence"]
    db = waiver(id="W-2", source="dev", destination="test", port="5432/tcp")
    (row,) = judged([result], web, db)
    assert row["status"] == "waived" and row["waiver"] == "W-1"
    assert [w["id"] for w in row["waivers"]] == ["W-1", "W-2"]
    assert [r.get("waiver") for r in row["rows"]] == ["W-1", "W-2", None], "a passing row is never marked"
    assert accepted_risk([row]) == (
        "accepted risk (waiver W-1, approved by erin, expires 2027-01-31; "
        "waiver W-2, approved by erin, expires 2027-01-31)"
    )
    # one of the two unsigned: the other covers only half, so the result fails
    (row,) = judged([result], web, db, signed_ids={"W-1"})
    assert row["status"] == "fail" and "waiver 'W-2' covers this but is unsigned" in row["evidence"]


def test_a_port_names_its_protocol():
    gateway_probe = probe("test-app1", "9/udp", ok=False)
    assert judged([net2(gateway_probe)], waiver(source="dev", destination="test", port=9))[0]["status"] == "fail"
    assert judged([net2(gateway_probe)], waiver(source="dev", destination="test", port="9/udp"))[0]["status"] == (
        "waived"
    )


# ---- production: never waived, whatever waiver is handed in ---------------------------------------------------
@pytest.mark.parametrize(
    ("result", "scope"),
    [
        (net2(probe("prod-app1", 22, ok=False)), {}),
        (net2(probe("prod-app1", 22, ok=False)), {"destination": "prod"}),
        (net2(probe("prod-app1", 22, ok=False)), {"environment": "dev"}),
        (net2(probe("prod-db1", 5432, ok=False, source="test-app1"), source="test-app1"), {"source": "test"}),
        (net2(probe("test-app1", 80, ok=False, source="prod-app1"), source="prod-app1"), {"destination": "test"}),
        (net2(source="dev-app1"), {"source": "dev"}),  # failed with no evidence row: where it failed is unknown
    ],
    ids=["unscoped", "into-prod", "from-dev", "test-into-prod", "out-of-prod", "unknown-destination"],
)
def test_net2_in_production_is_never_waived(result: dict[str, Any], scope: dict[str, str]):
    handed = waiver(**scope)
    (row,) = judged([result], handed)
    assert row["status"] == "fail" and "waiver" not in row and not any(r.get("waiver") for r in row["rows"])
    assert "waiver W-1 not applied to " in row["evidence"] and NEVER_NET2 in row["evidence"]
    assert not waiver_covers(example_site(waivers=[handed]), handed, result)


def test_acc2_in_production_is_never_waived():
    accepted_on_prod = acc2(attempt("dev-app1", True), attempt("prod-app1", False, user="root"))
    for scope in ({}, {"person": "alice"}, {"environment": "prod"}, {"host": "prod-app1"}):
        (row,) = judged([accepted_on_prod], waiver(control="ACC-2", **scope))
        assert row["status"] == "fail", scope
        assert "alice, prod-app1 in prod" in row["evidence"] and NEVER_ACC2 in row["evidence"], scope
    # rows recorded before they carried `ok`: refused false is the failure
    legacy = acc2({"host": "prod-db1", "user": "alice", "refused": False, "stderr": ""})
    assert failures_of(example_site(), legacy)[0].host == "prod-db1"
    assert judged([legacy], waiver(control="ACC-2"))[0]["status"] == "fail"
    # no evidence row: which host failed is unknown, so it may be production
    assert judged([acc2()], waiver(control="ACC-2"))[0]["status"] == "fail"


def test_a_waived_acc2_failure_outside_production_is_an_accepted_risk():
    """The positive control failed (alice's key does not work in development): that may be waived."""
    dev_only = acc2(attempt("dev-app1", False), attempt("prod-app1", True))
    (row,) = judged([dev_only], waiver(control="ACC-2", environment="dev"))
    assert row["status"] == "waived" and row["rows"][0]["waiver"] == "W-1" and "waiver" not in row["rows"][1]
    assert accepted_risk([row]) == "accepted risk (waiver W-1, approved by erin, expires 2027-01-31)"
    both = acc2(attempt("dev-app1", False), attempt("prod-app1", False))
    (row,) = judged([both], waiver(control="ACC-2", environment="dev"))
    assert row["status"] == "fail" and "waivers cover 1 of 2 failures" in row["evidence"]
    assert "alice, prod-app1 in prod" in row["evidence"]


# ---- bookkeeping ------------------------------------------------------------------------------------------------
def test_applying_twice_gives_the_same_rows_and_leaves_the_input_alone():
    result = net2(probe("test-app1", 80, ok=False), probe("prod-app1", 22, ok=False))
    kept = copy.deepcopy(result)
    site = example_site(waivers=[waiver(source="dev", destination="test")])
    once = apply_waivers([result], site, TODAY, {"W-1"})
    assert result == kept, "the suite's own rows are not changed"
    assert apply_waivers(once, site, TODAY, {"W-1"}) == once, "notes are not added twice"
    later = apply_waivers(once, site, dt.date(2027, 2, 1), {"W-1"})
    assert later[0]["evidence"].count("covers this but is expired") == 1
    assert later[0]["evidence"].startswith("paths not as declared") and "waivers cover" not in later[0]["evidence"]
    assert not any(r.get("waiver") for r in later[0]["rows"]), "an expired waiver marks no evidence row"


def test_waivers_signed_before_the_new_scope_keys_keep_their_signature():
    """The content an approver signs leaves out scope keys a waiver does not use: signatures made before host,
    source, destination and port existed still match (digests taken before the change)."""
    acc1 = Waiver.model_validate(
        {"id": "W-1", "control": "ACC-1", "person": "alice", "environment": "prod", "justification":
         "two-person team: alice is on call", "requester": "alice", "approver": "erin", "risk": "high",
         "expires": "2027-01-31", "compensating": ["session logging"]}
    )  # fmt: skip
    net3 = Waiver.model_validate(
        {"id": "W-2", "control": "NET-3", "justification": "legacy firewall rule", "requester": "dave",
         "approver": "erin", "risk": "low", "expires": "2027-01-31"}
    )  # fmt: skip
    assert waiver_digest(acc1) == "sha256:5aa62855270ffc83e82eac99e48e5a945774f4e3d4115dc0499b04798a7b5010"
    assert waiver_digest(net3) == "sha256:385f47a296e8d6d1ebafc4ef4797b9613c2fa5a22b313f3906d269be49bfe5d9"
    narrowed = net3.model_copy(update={"host": "test-app1"})
    assert waiver_digest(narrowed) != waiver_digest(net3), "a new scope key is part of what is signed"


# ---- access networks (issue 18, item 2): their paths are never waived ----------------------------------------
def test_a_failure_from_an_access_network_is_never_waived_even_into_test():
    """A waiver names environments; an access network is none, so a path from one counts as one that may reach
    production: no waiver, however wide (none of its keys set) or narrow, sets it aside."""
    row = {
        "source": "probe@office", "source_env": "office", "destination": "test-app1", "destination_env": "test",
        "port": 80, "expected": "blocked", "observed": "connected", "ok": False,
    }  # fmt: skip
    result = {**net2(row), "check": "test_reachability_from_each_access_network", "host": "office"}
    (failure,) = failures_of(example_site(), result)
    assert (failure.source, failure.destination, failure.environment) == (None, "test", None)
    for candidate in (waiver(), waiver(destination="test"), waiver(environment="test", destination="test")):
        assert not waiver_covers(example_site(waivers=[candidate]), candidate, result), candidate.scope_words()
        (judged_row,) = judged([result], candidate)
        assert judged_row["status"] == "fail" and "waiver" not in judged_row
