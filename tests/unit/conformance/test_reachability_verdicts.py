"""NET-2's reading of its attempts: only the gateway's own refusal, counted by its deny counter, passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import example_with_access_networks, write_site

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


# ---- access networks (people's workstations, issue 18) --------------------------------------------------------
@pytest.fixture(scope="module")
def access_site(tmp_path_factory):
    return load_site(write_site(tmp_path_factory.mktemp("access"), example_with_access_networks())).model


OFFICE_LEG = "10.90.50.1"


def test_from_the_office_ssh_reaches_dev_and_test_and_nothing_else(access_site):
    targets = reachability.access_targets(access_site, "office")
    opened = {(t.destination, t.port, t.proto) for t in targets if t.expected == "open"}
    assert opened == {(h.name, 22, "tcp") for h in access_site.hosts if h.environment in ("dev", "test")}
    assert pick(targets, "prod-app1").expected == "blocked" and pick(targets, "prod-app1").counter == (
        "deny_office_to_prod"
    )
    assert pick(targets, "test-app1", 80).expected == "blocked", "the dev -> test flow is not the office's"
    assert pick(targets, "dev-db1", 5432).counter == "deny_office_to_dev"
    assert pick(targets, "dev-app1", 9, "udp").expected == "blocked"
    controller = pick(targets, "controller")
    assert controller.expected == "blocked" and controller.counter == "deny_office_to_mgmt"
    legs = {t.address: t for t in targets if t.destination.startswith("gateway")}
    assert set(legs) == {"10.90.10.1", "10.90.20.1", "10.90.30.1", OFFICE_LEG, "10.90.60.1", "10.90.0.254"}
    assert all(t.expected == "blocked" and t.counter == "deny_gateway_input" for t in legs.values())
    assert legs[OFFICE_LEG].destination == "gateway (leg on office)"


def test_from_the_admins_network_ssh_reaches_production_too(access_site):
    targets = reachability.access_targets(access_site, "admins")
    assert pick(targets, "prod-db1").expected == "open"
    assert pick(targets, "prod-db1", 5432).expected == "blocked", "SSH only, even for admins"
    assert pick(targets, "controller").counter == "deny_admins_to_mgmt"


def test_from_an_environment_the_access_networks_legs_are_tried_and_refused(access_site):
    legs = {t.destination: t for t in reachability.targets(access_site, "dev") if t.destination.startswith("gateway")}
    for name, address in (("office", OFFICE_LEG), ("admins", "10.90.60.1")):
        leg = legs[f"gateway (leg on {name})"]
        assert (leg.address, leg.expected, leg.counter) == (address, "blocked", "deny_gateway_input")
    same_as_before = [t for t in reachability.targets(access_site, "dev") if not t.destination.startswith("gateway")]
    assert same_as_before == [t for t in reachability.targets(load_site(str(EXAMPLE)).model, "dev")
                              if not t.destination.startswith("gateway")]  # fmt: skip


def test_an_office_refusal_counted_by_the_gateway_passes_and_an_open_path_to_production_fails(access_site):
    targets = reachability.access_targets(access_site, "office")
    ssh_prod, udp_prod = pick(targets, "prod-db1"), pick(targets, "prod-db1", 9, "udp")
    counted = {"deny_office_to_prod": 2}
    verdicts = reachability.judge("office", OFFICE_LEG, [tcp(ssh_prod, "rejected"), udp(udp_prod, OFFICE_LEG)], counted)
    assert [v.ok for v in verdicts] == [True, True], [v.detail for v in verdicts]
    (opened,) = reachability.judge("office", OFFICE_LEG, [tcp(ssh_prod, "connected")], {"deny_office_to_prod": 9})
    assert not opened.ok and "the gateway let it through" in opened.detail
    (by_host,) = reachability.judge("office", OFFICE_LEG, [udp(udp_prod, udp_prod.address, 3)], counted)
    assert not by_host.ok and "not the gateway" in by_host.detail
    dev_ssh = pick(targets, "dev-app1")
    (silent,) = reachability.judge("office", OFFICE_LEG, [tcp(dev_ssh, "no-answer", 4)], {})
    assert not silent.ok and "silence proves nothing" in silent.detail, "SSH to dev must be seen open"


def test_an_unknown_access_network_is_not_guessed(access_site):
    with pytest.raises(KeyError):
        reachability.access_targets(access_site, "dev")
