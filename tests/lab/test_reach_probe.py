"""The reachability probe against a tiny real network of namespaces: a source segment with the controller's probe
point on its bridge, a gateway namespace with an nftables reject, a target namespace. Each outcome NET-2 relies on
is produced for real and read back: the gateway's "administratively prohibited" with its type and code, a target's
own reject, a target that is down ("host unreachable"), silence retried, and the probe hearing its own IPv6 echo."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from probe_network import ProbeNetwork

from provisioner.backends.network import links
from provisioner.backends.network.probe_point import ProbePoint
from provisioner.remote import reach

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

SRC_NET, DST_NET = "10.197.1", "10.197.2"


GATEWAY_RULES = """
table inet rpt {
  counter deny_src_to_dst {}
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "src" oifname "dst" tcp dport 8080 accept
    iifname "src" oifname "dst" tcp dport 8081 accept
    iifname "src" oifname "dst" tcp dport 8082 accept
    iifname "src" oifname "dst" udp dport 9 ip daddr 10.197.2.2 accept
    iifname "src" oifname "dst" ip daddr 10.197.2.9 accept
    iifname "src" oifname "dst" counter name "deny_src_to_dst" reject with icmpx type admin-prohibited
  }
}
"""
TARGET_RULES = """
table inet rpt {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 8082 drop
  }
}
"""


NET = ProbeNetwork("rpt", SRC_NET, DST_NET, GATEWAY_RULES, TARGET_RULES)
GW_NS = NET.gateway_ns
BRIDGE = NET.bridge


@pytest.fixture(scope="module")
def network():
    # the settle lets the gateway's link-local address pass duplicate detection
    with NET.probe_point(settle=2) as point:
        listener = subprocess.Popen(
            ["ip", "netns", "exec", NET.target_ns, "python3", "-c",
             "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
             "s.bind(('0.0.0.0', 8080)); s.listen(64)\nwhile True: s.accept()[0].close()"],
        )  # fmt: skip
        try:
            _wait_listening(8080)
            yield point
        finally:
            listener.kill()
            listener.wait()


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready = NET.in_ns(NET.target_ns, "ss", "-Hltn", f"sport = :{port}", check=False).stdout
        if ready.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"the target's listener on {port} did not start")


def probe(point: ProbePoint, targets, retries: int = 0, v6: bool = False):
    request = reach.request(targets, retries=retries, ipv6_interface="eth0" if v6 else None)
    result = point.python(reach.SCRIPT, json.dumps(request))
    assert result.returncode == 0, result.stderr
    return reach.parse(json.loads(result.stdout))


def test_each_outcome_is_told_apart(network):
    dst = f"{DST_NET}.2"
    before = NET.counter()
    outcomes, _ = probe(
        network,
        [(dst, 8080, "tcp"), (dst, 8081, "tcp"), (dst, 22, "tcp"), (dst, 9, "udp"), (dst, 10, "udp"),
         (f"{DST_NET}.9", 9, "udp")],
    )  # fmt: skip
    by = {(o.address, o.port, o.proto): o for o in outcomes}
    assert by[(dst, 8080, "tcp")].outcome == "connected"
    assert by[(dst, 8081, "tcp")].outcome == "refused", "the target itself answered with a reset"
    assert by[(dst, 22, "tcp")].outcome == "rejected"
    gateway = by[(dst, 10, "udp")]
    assert (gateway.outcome, gateway.icmp_type, gateway.icmp_code) == (f"icmp-from:{SRC_NET}.1", 3, 13)
    own = by[(dst, 9, "udp")]
    assert (own.outcome, own.icmp_type, own.icmp_code) == (f"icmp-from:{dst}", 3, 3), "the target's port unreachable"
    down = by[(f"{DST_NET}.9", 9, "udp")]
    assert (down.outcome, down.icmp_type, down.icmp_code) == (f"icmp-from:{SRC_NET}.1", 3, 1), "host unreachable"
    assert NET.counter() - before == 2, "the gateway counted exactly its two refusals (tcp/22 and udp/10)"


def test_silence_is_retried_and_reported_as_no_answer(network):
    started = time.monotonic()
    outcomes, _ = probe(network, [(f"{DST_NET}.2", 8082, "tcp")], retries=2)
    assert outcomes[0].outcome == "no-answer" and outcomes[0].tries == 3
    assert time.monotonic() - started >= 3 * 3 + 0.5 + 1.0 - 0.5, "three 3 s attempts with growing pauses"


def test_the_probe_hears_its_own_ipv6_answer_and_the_bridge_is_silent(network):
    _, link = probe(network, [], v6=True)
    assert link is not None and link.own and set(link.own) <= set(link.heard), link
    others = [a for a in link.heard if a not in link.own]
    gateway_v6 = NET.in_ns(GW_NS, "ip", "-6", "-br", "address", "show", "dev", "src").stdout
    expected_others = {line.split()[2].split("/")[0] for line in gateway_v6.splitlines() if "fe80::" in line}
    assert set(others) == expected_others, "exactly the gateway's own link-local answers; the bridge has IPv6 off"
    assert links.ipv6_enabled(BRIDGE) is False
