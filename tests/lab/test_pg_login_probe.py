"""ACC-3's login attempt at a real probe point against a tiny real network of namespaces (a source segment with the
controller's probe point on its bridge, a gateway namespace with an nftables reject, a target namespace): each way
a connection can end before PostgreSQL answers is produced for real and read back with who caused it. The gateway's
reject is named as the gateway's (ICMP type 3 code 13 from its leg) and counted; the target's own reject, a target
that is down, a reset and silence are each something else. (What PostgreSQL answers is shown against the lab's
real servers in test_conformance.py.)"""

from __future__ import annotations

import json
import time

import pytest
from probe_network import ProbeNetwork

from provisioner.backends.network.probe_point import ProbePoint
from provisioner.conformance import database_login
from provisioner.remote import pg_login

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

SRC_NET, DST_NET = "10.196.1", "10.196.2"
GATEWAY_LEG = f"{SRC_NET}.1"
TARGET = f"{DST_NET}.2"


GATEWAY_RULES = f"""
table inet pgp {{
  counter deny_src_to_dst {{}}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "src" oifname "dst" tcp dport {{ 5433, 5434, 5435 }} accept
    iifname "src" oifname "dst" ip daddr {DST_NET}.9 accept
    iifname "src" oifname "dst" counter name "deny_src_to_dst" reject with icmpx type admin-prohibited
  }}
}}
"""
TARGET_RULES = """
table inet pgp {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 5434 drop
    tcp dport 5435 reject with icmpx type admin-prohibited
  }
}
"""


NET = ProbeNetwork("pgp", SRC_NET, DST_NET, GATEWAY_RULES, TARGET_RULES)


@pytest.fixture(scope="module")
def point():
    with NET.probe_point() as probe:
        yield probe


def attempt(probe: ProbePoint, address: str, port: int, retries: int = 0) -> pg_login.Result:
    request = pg_login.request(address, port, "alice", "app", retries=retries)
    ran = probe.python(pg_login.script(), request, input_text="not-a-real-password\n", timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "not-a-real-password" not in ran.stdout
    return pg_login.parse(json.loads(ran.stdout))


def test_the_gateways_reject_is_named_as_the_gateways_and_counted(point):
    before = NET.counter()
    result = attempt(point, TARGET, 5432)
    assert (result.outcome, result.sender, result.icmp_type, result.icmp_code) == ("icmp", GATEWAY_LEG, 3, 13)
    assert database_login.kind(result, GATEWAY_LEG) == database_login.GATEWAY_REFUSED
    rose = NET.counter() - before
    (verdict,) = database_login.judge_production([(result, "deny_src_to_dst")], GATEWAY_LEG, {"deny_src_to_dst": rose})
    assert verdict.ok and rose >= result.tries, verdict.detail


def test_the_targets_own_reject_is_not_the_gateways(point):
    result = attempt(point, TARGET, 5435)
    assert (result.outcome, result.sender, result.icmp_type, result.icmp_code) == ("icmp", TARGET, 3, 13)
    assert database_login.kind(result, GATEWAY_LEG) == database_login.OTHER_ERROR


def test_a_target_that_is_down_is_host_unreachable_from_the_gateway_not_its_reject(point):
    result = attempt(point, f"{DST_NET}.9", 5432)
    assert (result.outcome, result.sender, result.icmp_type, result.icmp_code) == ("icmp", GATEWAY_LEG, 3, 1)
    assert database_login.kind(result, GATEWAY_LEG) == database_login.OTHER_ERROR


def test_a_reset_is_another_error(point):
    result = attempt(point, TARGET, 5433)
    assert result.outcome == "error" and result.detail.startswith("connection refused"), result


def test_silence_is_retried_and_stays_no_answer(point):
    started = time.monotonic()
    result = attempt(point, TARGET, 5434, retries=2)
    assert (result.outcome, result.tries) == ("no-answer", 3)
    assert time.monotonic() - started >= 3 * pg_login.CONNECT_TIMEOUT + 0.5 + 1.0 - 0.5
    assert database_login.kind(result, GATEWAY_LEG) == database_login.NO_ANSWER
