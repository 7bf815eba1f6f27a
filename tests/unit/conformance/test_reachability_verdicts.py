"""NET-2's reading of its attempts: only the gateway's own refusal, counted by its deny counter, passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.conformance import reachability
from provisioner.remote.reach import LinkV6, Outcome
from provisioner.site.load import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories/example/site.yml"
GW = "10.90.10.1"


@pytest.fixture(scope="module")
def site():
    return load_site(str(EXAMPLE)).model


def tcp(target: reachability.Target, outcome: str, tries: int = 1) -> tuple[reachability.Target, Outcome]:
    return target, Outcome(target.address, target.port, "tcp", outcome, tries)


def udp(target, sender: str | None, code: int = 13, tries: int = 1):
    if sender is None:
        return target, Outcome(target.address, target.port, "udp", "no-answer", tries)
    return target, Outcome(target.address, target.port, "udp", f"icmp-from:{sender}", tries, 3, code)


def pick(targets, destination, port=22, proto="tcp"):
    return next(t for t in targets if t.destination == destination and t.port == port and t.proto == proto)


def test_targets_cover_other_environments_every_gateway_leg_and_the_controller(site):
    targets = reachability.targets(site, "dev")
    assert {t.destination_env for t in targets if t.destination not in ("controller",)} >= {"test", "prod", "mgmt"}
    assert not [t for t in targets if t.destination in {h.name for h in site.hosts_in("dev")}]
    legs = {t.address for t in targets if t.destination.startswith("gateway")}
    assert legs == {str(e.segment.gateway) for e in site.environments} | {str(site.management.gateway)}
    controller = pick(targets, "controller")
    assert controller.expected == "blocked" and controller.counter == "deny_dev_to_mgmt"
    assert pick(targets, "prod-db1", 5432).expected == "blocked"
    assert any(t.expected == "open" for t in targets), "the example's dev -> test flow is tried as open"
    assert pick(targets, "prod-db1", 9, "udp").counter == "deny_dev_to_prod"


def test_a_gateway_refusal_that_it_counted_passes(site):
    t = pick(reachability.targets(site, "dev"), "prod-db1")
    u = pick(reachability.targets(site, "dev"), "prod-db1", 9, "udp")
    verdicts = reachability.judge("dev", GW, [tcp(t, "rejected"), udp(u, GW)], {"deny_dev_to_prod": 2})
    assert [v.ok for v in verdicts] == [True, True], [v.detail for v in verdicts]
    assert "corroborates" in verdicts[0].detail


def test_a_refusal_the_gateway_did_not_count_fails(site):
    """The target's own firewall answered: the gateway let the packet through."""
    t = pick(reachability.targets(site, "dev"), "prod-db1")
    (v,) = reachability.judge("dev", GW, [tcp(t, "rejected")], {"deny_dev_to_prod": 0})
    assert not v.ok and "does NOT corroborate" in v.detail


def test_unreadable_counters_corroborate_nothing(site):
    t = pick(reachability.targets(site, "dev"), "prod-db1")
    (v,) = reachability.judge("dev", GW, [tcp(t, "rejected")], None)
    assert not v.ok and "could not be read" in v.detail


def test_icmp_from_the_target_or_host_unreachable_fails(site):
    u = pick(reachability.targets(site, "dev"), "prod-db1", 9, "udp")
    counted = {"deny_dev_to_prod": 5}
    (from_target,) = reachability.judge("dev", GW, [udp(u, u.address, 3)], counted)
    assert not from_target.ok and "not the gateway" in from_target.detail
    (down,) = reachability.judge("dev", GW, [udp(u, GW, 1)], counted)
    assert not down.ok and "host unreachable" in down.detail, "a down target must not pass as refused"


def test_silence_passes_a_blocked_path_only_on_the_count_and_never_an_open_one(site):
    targets = reachability.targets(site, "dev")
    blocked = pick(targets, "prod-db1")
    opened = next(t for t in targets if t.expected == "open")
    verdicts = reachability.judge(
        "dev", GW, [tcp(blocked, "no-answer", 4), tcp(opened, "no-answer", 4)], {"deny_dev_to_prod": 4}
    )
    assert verdicts[0].ok and "no answer after 4 tries" in verdicts[0].detail
    assert not verdicts[1].ok and "silence proves nothing" in verdicts[1].detail
    (short,) = reachability.judge("dev", GW, [tcp(blocked, "no-answer", 4)], {"deny_dev_to_prod": 3})
    assert not short.ok, "4 attempts need a rise of 4"


def test_an_open_blocked_path_fails_whatever_the_counters(site):
    t = pick(reachability.targets(site, "dev"), "prod-db1")
    (v,) = reachability.judge("dev", GW, [tcp(t, "refused")], {"deny_dev_to_prod": 100})
    assert not v.ok and "the gateway let it through" in v.detail


def test_counters_are_read_from_nft_json():
    data = {"nftables": [{"metainfo": {}}, {"counter": {"name": "deny_dev_to_prod", "packets": 7, "bytes": 420}}]}
    assert reachability.parse_counters(data) == {"deny_dev_to_prod": 7}
    assert reachability.counter_rise({"a": 2}, {"a": 5, "b": 1}) == {"a": 3, "b": 1}


def test_ipv6_answers_other_than_the_probe_fail_and_a_deaf_probe_proves_nothing():
    own = "fe80::1"
    assert reachability.ipv6_verdict(LinkV6([own], [own]))[0]
    ok, detail = reachability.ipv6_verdict(LinkV6([own, "fe80::2"], [own]))
    assert not ok and "fe80::2" in detail
    ok, detail = reachability.ipv6_verdict(LinkV6([], [own]))
    assert not ok and detail.startswith("inconclusive")
    assert not reachability.ipv6_verdict(None)[0]
