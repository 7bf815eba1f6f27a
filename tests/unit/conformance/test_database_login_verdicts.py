"""ACC-3's reading of its database attempts: a production attempt passes only on the gateway's reject that its
deny counter corroborates, or on the server's authorisation refusal; the positive control must log in, and its
failure is the control's failure, never a proof. The probe runs the control only where the site's own rules admit
the probe's address (never by opening anything for it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.conformance import database_login as db
from provisioner.remote.pg_login import Result
from provisioner.site import policy
from provisioner.site.load import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories/example/site.yml"
GW = "10.90.10.1"
PROD_DB = "10.90.30.21"
COUNTER = "deny_dev_to_prod"


@pytest.fixture(scope="module")
def site():
    return load_site(str(EXAMPLE)).model


def logged_in(user: str | None = "alice", sqlstate: str = "", message: str = "") -> Result:
    return Result(PROD_DB, "alice", "app", "logged-in", 1, current_user=user, server_proved=True,
                  sqlstate=sqlstate, message=message)  # fmt: skip


def server_refused(sqlstate: str, message: str = "refused") -> Result:
    return Result(PROD_DB, "alice", "app", "server-refused", 1, sqlstate=sqlstate, message=message)


def icmp(sender: str, code: int = 13, tries: int = 1) -> Result:
    return Result(PROD_DB, "alice", "app", "icmp", tries, sender=sender, icmp_type=3, icmp_code=code)


def silent(tries: int = 4) -> Result:
    return Result(PROD_DB, "alice", "app", "no-answer", tries)


def error(detail: str) -> Result:
    return Result(PROD_DB, "alice", "app", "error", 1, detail=detail)


def judge_one(result: Result, counted: dict[str, int] | None = None) -> db.Verdict:
    (verdict,) = db.judge_production([(result, COUNTER)], GW, {COUNTER: 1} if counted is None else counted)
    return verdict


# ---- the five kinds -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("result", "kind"),
    [
        (logged_in(), db.LOGGED_IN),
        (server_refused("28000"), db.SERVER_REFUSED),
        (icmp(GW), db.GATEWAY_REFUSED),
        (icmp(GW, code=1), db.OTHER_ERROR),  # host unreachable: the gateway routed it
        (icmp(PROD_DB), db.OTHER_ERROR),  # the target's own firewall: the gateway let it through
        (silent(), db.NO_ANSWER),
        (error("connection refused (a TCP reset: nothing listens there)"), db.OTHER_ERROR),
    ],
)
def test_each_outcome_is_one_of_five_kinds_and_only_the_gateways_own_reject_is_its_refusal(result, kind):
    assert db.kind(result, GW) == kind


# ---- production ---------------------------------------------------------------------------------------------------
def test_a_gateway_reject_its_counter_corroborates_passes():
    verdict = judge_one(icmp(GW, tries=2), {COUNTER: 2})
    assert verdict.ok and verdict.kind == db.GATEWAY_REFUSED
    assert verdict.detail == (
        "ICMP type 3 code 13 from the gateway (10.90.10.1): communication administratively prohibited (a firewall's "
        "reject); the gateway's counter deny_dev_to_prod rose by 2 for 2 tries: corroborates"
    )


def test_a_gateway_reject_the_counter_did_not_count_fails():
    verdict = judge_one(icmp(GW, tries=2), {COUNTER: 1})
    assert not verdict.ok and "rose by 1 for 2 tries: does NOT corroborate" in verdict.detail


def test_attempts_on_one_pair_need_the_counter_to_rise_by_all_their_tries():
    attempts = [(icmp(GW, tries=1), COUNTER), (icmp(GW, tries=3), COUNTER)]
    assert [v.ok for v in db.judge_production(attempts, GW, {COUNTER: 3})] == [False, False]
    assert [v.ok for v in db.judge_production(attempts, GW, {COUNTER: 4})] == [True, True]


def test_unreadable_counters_corroborate_no_gateway_reject():
    (verdict,) = db.judge_production([(icmp(GW), COUNTER)], GW, None)
    assert not verdict.ok and "could not be read: not corroborated" in verdict.detail


@pytest.mark.parametrize(
    ("sqlstate", "reason"),
    [("28000", "pg_hba.conf rejects the connection"), ("28P01", "the password is refused")],
)
def test_the_servers_authorisation_refusal_passes_without_any_counter(sqlstate, reason):
    (verdict,) = db.judge_production([(server_refused(sqlstate, "no entry"), COUNTER)], GW, None)
    assert verdict.ok and verdict.kind == db.SERVER_REFUSED
    assert verdict.detail == f"SQLSTATE {sqlstate} ({reason}): no entry: the server refused the login"


@pytest.mark.parametrize("sqlstate", ["53300", "57P03", "08P01"])
def test_a_server_error_that_is_no_authorisation_refusal_fails(sqlstate):
    """Too many connections, starting up, a protocol violation: the login was never judged."""
    verdict = judge_one(server_refused(sqlstate))
    assert not verdict.ok and "not for authorisation: inconclusive" in verdict.detail


def test_a_login_fails_even_when_the_server_then_finds_something_else_wrong():
    verdict = judge_one(logged_in(None, "3D000", 'database "app" does not exist'), {COUNTER: 9})
    assert not verdict.ok and verdict.kind == db.LOGGED_IN
    assert verdict.detail == (
        'logged in as ?; then 3D000: database "app" does not exist: the production database accepted the '
        "developer's password"
    )
    assert not judge_one(logged_in()).ok


def test_silence_never_passes_whatever_the_counter():
    verdict = judge_one(silent(4), {COUNTER: 100})
    assert not verdict.ok and verdict.kind == db.NO_ANSWER
    assert verdict.detail.startswith("no answer after 4 tries: silence proves nothing")


def test_a_refusal_from_the_target_or_a_host_unreachable_fails():
    own = judge_one(icmp(PROD_DB), {COUNTER: 100})
    assert not own.ok and f"from {PROD_DB}, not the gateway ({GW})" in own.detail
    assert "the gateway let the connection through" in own.detail
    down = judge_one(icmp(GW, code=1), {COUNTER: 100})
    assert not down.ok and "host unreachable" in down.detail


def test_another_error_fails_with_what_happened():
    verdict = judge_one(error("connection refused (a TCP reset: nothing listens there)"))
    assert not verdict.ok and verdict.kind == db.OTHER_ERROR
    assert verdict.detail == (
        "connection refused (a TCP reset: nothing listens there): neither the gateway nor the server refused the login"
    )


# ---- the positive control -----------------------------------------------------------------------------------------
def test_the_control_passes_only_on_a_login_read_back_as_the_developer():
    verdict = db.judge_control(logged_in("alice"), "alice", GW)
    assert verdict.ok and verdict.detail.startswith("logged in as alice: the control works")


@pytest.mark.parametrize(
    "result",
    [logged_in("postgres"), logged_in(None), server_refused("28P01"), icmp(GW), silent(), error("reset")],
    ids=["someone-else", "not-read-back", "refused", "gateway", "silent", "error"],
)
def test_a_control_that_did_not_log_in_as_the_developer_is_the_controls_failure(result):
    verdict = db.judge_control(result, "alice", GW)
    assert not verdict.ok
    assert (
        verdict.detail.startswith("the control failed (") and "without it no refusal proves anything" in verdict.detail
    )


# ---- where the control runs ---------------------------------------------------------------------------------------
def test_the_development_database_admits_the_developer_from_the_probes_address_by_the_sites_own_rules(site):
    dev = site.environment("dev")
    dev_db = next(h for h in site.hosts_in("dev") if "db" in h.roles)
    ok, why = db.control_from_probe(site, dev, dev_db, "alice")
    assert ok, why
    assert why == (
        "dev-db1 admits alice from 10.90.10.0/24 (host firewall and pg_hba.conf), which holds the probe's address "
        "10.90.10.254"
    )


def test_a_database_whose_rules_do_not_admit_the_probes_segment_is_not_tried_from_the_probe(site):
    """Production's database admits its port only from its app hosts: the probe there is not admitted, and
    nothing is opened for it."""
    prod = site.environment("prod")
    prod_db = next(h for h in site.hosts_in("prod") if "db" in h.roles)
    ok, why = db.control_from_probe(site, prod, prod_db, "alice")
    assert not ok
    assert why == (
        "prod-db1's host firewall admits port 5432 only from 10.90.30.11/32, which does not hold the probe's "
        "address 10.90.30.254"
    )
    sources = next(s["sources"] for s in policy.service_sources(site, prod_db) if s["port"] == 5432)
    assert sources == ["10.90.30.11/32"], "production's rules are the app host only"


def test_a_developer_without_a_database_role_is_not_tried_from_the_probe(site):
    dev = site.environment("dev")
    dev_db = next(h for h in site.hosts_in("dev") if "db" in h.roles)
    ok, why = db.control_from_probe(site, dev, dev_db, "carol")
    assert not ok and why == "carol has no database role in dev"
