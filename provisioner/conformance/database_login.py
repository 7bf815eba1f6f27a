"""ACC-3's database attempts and their reading: a developer's real login, with the developer's own password, from
the controller's probe point on the development segment, into the development database (the positive control) and
into each production database (which must refuse it).

A production attempt passes only for the right reason: the gateway itself refused the connection (ICMP
"administratively prohibited", type 3 code 13, from its leg on the development segment) and its deny counter for
the pair rose by at least the number of tries; or the database server refused the login before accepting the
password (SQLSTATE class 28: 28000, pg_hba.conf rejects it; 28P01, the password fails). Everything else fails: a
login, silence (it proves nothing), a refusal from anyone but the gateway (the target's own firewall, a "host
unreachable": the gateway let the packet through), a reset, a server that does not speak the protocol. The positive
control must log in as the developer, else the check fails because the control failed, never as proof.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from provisioner.remote.pg_login import Result
from provisioner.remote.reach import ADMIN_PROHIBITED, ICMP_CODES
from provisioner.site import policy
from provisioner.site.model import Environment, Host, Site

DB_PORT = 5432
DATABASE = "app"  # roles/postgres: postgres_app_database

LOGGED_IN = "logged in"
SERVER_REFUSED = "refused by the server"
GATEWAY_REFUSED = "refused by the gateway"
NO_ANSWER = "no answer"
OTHER_ERROR = "another error"

SQLSTATES = {
    "28000": "pg_hba.conf rejects the connection",
    "28P01": "the password is refused",
}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    kind: str  # one of the five kinds above
    detail: str


def kind(result: Result, gateway_leg: str) -> str:
    """Which of the five ways the attempt ended: an ICMP error counts as the gateway's refusal only when it is the
    gateway's reject (type 3 code 13) sent from its leg on the source segment."""
    if result.outcome == "logged-in":
        return LOGGED_IN
    if result.outcome == "server-refused":
        return SERVER_REFUSED
    if result.outcome == "icmp" and result.sender == gateway_leg and _icmp(result) == ADMIN_PROHIBITED:
        return GATEWAY_REFUSED
    if result.outcome == "no-answer":
        return NO_ANSWER
    return OTHER_ERROR


def _icmp(result: Result) -> tuple[int | None, int | None]:
    return result.icmp_type, result.icmp_code


def describe(result: Result, gateway_leg: str) -> str:
    """What happened, in the evidence's words."""
    found = kind(result, gateway_leg)
    if found == LOGGED_IN:
        after = f"; then {result.sqlstate}: {result.message}" if result.sqlstate else ""
        return f"logged in as {result.current_user or '?'}{after}"
    if found == SERVER_REFUSED:
        reason = SQLSTATES.get(result.sqlstate, "not an authorisation refusal")
        return f"SQLSTATE {result.sqlstate} ({reason}): {result.message}"
    if found == GATEWAY_REFUSED:
        return f"{result.icmp} from the gateway ({gateway_leg}): {ICMP_CODES[ADMIN_PROHIBITED[1]]}"
    if found == NO_ANSWER:
        return f"no answer after {result.tries} tries"
    if result.outcome == "icmp":
        code = ICMP_CODES.get(result.icmp_code if result.icmp_code is not None else -1, f"code {result.icmp_code}")
        who = "the gateway" if result.sender == gateway_leg else f"{result.sender}, not the gateway ({gateway_leg})"
        return f"{result.icmp} from {who}: {code}"
    return result.detail or result.outcome


def judge_control(result: Result, developer: str, gateway_leg: str) -> Verdict:
    """The positive control passes only on a login as the developer, read back as current_user."""
    found = kind(result, gateway_leg)
    text = describe(result, gateway_leg)
    if found == LOGGED_IN and result.current_user == developer:
        return Verdict(True, found, f"{text}: the control works, so the refusals below are meaningful")
    return Verdict(False, found, f"the control failed ({text}): without it no refusal proves anything")


def judge_production(
    attempts: Sequence[tuple[Result, str]], gateway_leg: str, counted: dict[str, int] | None
) -> list[Verdict]:
    """Each production attempt's verdict. `attempts`: each result with the gateway counter that must count it
    (deny_<source>_to_<destination>); `counted`: how much each counter rose while they ran (None: unreadable)."""
    needed: dict[str, int] = {}
    for result, counter in attempts:
        if kind(result, gateway_leg) == GATEWAY_REFUSED:
            needed[counter] = needed.get(counter, 0) + result.tries
    return [_production_verdict(result, counter, gateway_leg, counted, needed) for result, counter in attempts]


def _production_verdict(
    result: Result, counter: str, gateway_leg: str, counted: dict[str, int] | None, needed: dict[str, int]
) -> Verdict:
    found = kind(result, gateway_leg)
    text = describe(result, gateway_leg)
    if found == LOGGED_IN:
        return Verdict(False, found, f"{text}: the production database accepted the developer's password")
    if found == SERVER_REFUSED:
        ok = result.sqlstate.startswith("28")
        why = "the server refused the login" if ok else "refused, but not for authorisation: inconclusive"
        return Verdict(ok, found, f"{text}: {why}")
    if found == GATEWAY_REFUSED:
        if counted is None:
            return Verdict(False, found, f"{text}; the gateway's deny counters could not be read: not corroborated")
        rose, want = counted.get(counter, 0), needed.get(counter, 0)
        ok = rose >= want
        verdict = "corroborates" if ok else "does NOT corroborate"
        return Verdict(ok, found, f"{text}; the gateway's counter {counter} rose by {rose} for {want} tries: {verdict}")
    if found == NO_ANSWER:
        return Verdict(False, found, f"{text}: silence proves nothing (neither the gateway nor the server refused)")
    if result.outcome == "icmp":
        return Verdict(False, found, f"{text}: not the gateway's reject, so the gateway let the connection through")
    return Verdict(False, found, f"{text}: neither the gateway nor the server refused the login")


def control_from_probe(site: Site, env: Environment, db_host: Host, developer: str) -> tuple[bool, str]:
    """Whether the development database admits the developer from the probe's address, as the site's rules say
    (never by opening anything for the probe): its host firewall admits the declared sources of the database port
    (policy.service_sources) and its pg_hba.conf admits each developer from the environment's subnet
    (playbooks/site.yml: postgres_developer_cidr is env_cidr). With the reason either way."""
    probe = policy.probe_address(env)
    sources = next((s["sources"] for s in policy.service_sources(site, db_host) if s["port"] == DB_PORT), [])
    declared = [str(source) for source in sources] if isinstance(sources, list) else []
    if not any(probe in ipaddress.ip_network(source) for source in declared):
        return False, (
            f"{db_host.name}'s host firewall admits port {DB_PORT} only from {', '.join(declared) or 'nowhere'}, "
            f"which does not hold the probe's address {probe}"
        )
    if developer not in policy.database_roles(site, env)["developers"]:
        return False, f"{developer} has no database role in {env.name}"
    # pg_hba.conf's rule for a developer is the environment's whole subnet, which holds its probe address
    return True, (
        f"{db_host.name} admits {developer} from {env.segment.cidr} (host firewall and pg_hba.conf), "
        f"which holds the probe's address {probe}"
    )
