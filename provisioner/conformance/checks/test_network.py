"""NET-1..3: segments, the reachability matrix between environments and from the access networks, host firewalls."""

from __future__ import annotations

import functools
import ipaddress
import json

import pytest

from provisioner.backends import backend_for
from provisioner.backends.network import probe_point
from provisioner.conformance import reachability
from provisioner.conformance.scope import NOT_ATTEMPTED
from provisioner.remote import reach
from provisioner.remote.ssh import OUTCOME_TEXT

BLOCKED = {"rejected", "timeout"}


@pytest.mark.control("NET-1")
def test_host_sits_only_in_its_environment(lab, evidence, host_name):
    host = lab.host(host_name)
    env = lab.model.environment(host.environment)
    evidence.expect(f"one interface, {host.address}/{env.segment.cidr.prefixlen} in {env.name} ({env.segment.cidr})")
    data = json.loads(lab.remote.host(str(host.address)).check_output("ip -j -4 address show"))
    addresses = [
        f"{a['local']}/{a['prefixlen']}" for item in data if item["ifname"] != "lo" for a in item.get("addr_info", [])
    ]
    evidence.observe(", ".join(addresses))
    assert addresses == [f"{host.address}/{env.segment.cidr.prefixlen}"], f"{host_name} has {addresses}"
    for address in addresses:
        assert ipaddress.ip_interface(address).network == env.segment.cidr


@pytest.mark.control("NET-1")
def test_hypervisor_wiring_matches_the_design(lab, evidence):
    backend = backend_for(lab.site, lab.state)
    actual = backend.discover()
    evidence.expect("every segment present; every machine on its own environment's segment only")
    problems = [f"segment {s.key} missing" for s in backend.desired.segments if s.key not in actual.segments]
    for name, machine in sorted(actual.machines.items()):
        problems += [f"{name}: {d}" for d in machine.drift]
        evidence.note(f"{name}: {machine.environment or 'gateway'} running={machine.running}")
    evidence.observe("; ".join(problems) or "as designed")
    assert not problems, "; ".join(problems)


@pytest.mark.control("NET-2")
@pytest.mark.waits(1.2)
def test_reachability_from_each_environment(lab, evidence, source_name):
    source = lab.host(source_name)
    env = lab.model.environment(source.environment)
    gateway_leg = str(env.segment.gateway)
    wanted = reachability.targets(lab.model, env.name)
    evidence.expect(
        "declared flows open; every other path out of the segment (hosts elsewhere, every leg of the gateway, "
        f"the controller) refused by the gateway itself ({gateway_leg}: ICMP administratively prohibited) and "
        "counted by its deny counter for that pair; nothing answers IPv6 on the segment but the probe itself"
    )
    attempt = functools.partial(_attempt, lab, env.name, source, wanted)
    _judge_and_record(lab, evidence, env.name, gateway_leg, wanted, attempt)


@pytest.mark.control("NET-2")
@pytest.mark.waits(1.2)
def test_reachability_from_each_access_network(lab, evidence, access_network_name):
    """People's workstations (issue 18): from the access network, SSH to the hosts of the environments it reaches
    passes; everything else — SSH elsewhere, every service port, every gateway leg, the controller — is refused by
    the gateway and counted as deny_<access network>_to_<zone>. Only the controller's probe can stand there (no
    machine of the site is ever placed on an access network)."""
    network = lab.model.access_network(access_network_name)
    gateway_leg = str(network.gateway_address)
    wanted = reachability.access_targets(lab.model, network.name)
    reached = ", ".join(network.reaches)
    evidence.expect(
        f"SSH open to every host of {reached}; every other path out of access network {network.name} ({network.cidr}: "
        "SSH to other environments, every service port, every leg of the gateway, the controller) refused by the "
        f"gateway itself ({gateway_leg}: ICMP administratively prohibited) and counted by its deny counter for that "
        "pair; nothing answers IPv6 on the network but the probe itself"
    )
    point = lab.backend.probe_point(network.name)
    if point is None:
        pytest.skip(
            f"{NOT_ATTEMPTED}the {lab.model.backend.type} backend gives the controller no probe point on access "
            f"network {network.name}, and no machine of the site sits there to attempt from"
        )
    attempt = functools.partial(_attempt_from, lab, point, network.name, wanted)
    _judge_and_record(lab, evidence, network.name, gateway_leg, wanted, attempt)


def _judge_and_record(lab, evidence, zone, gateway_leg, wanted, attempt):
    """Runs the attempts (between two readings of the gateway's counters, taken by the attempt itself: inside the
    probe's turn, so no other check's attempts from the same probe fall between them), judges each, and records the
    matrix rows (source_env: the environment or access network the attempts start from)."""
    outcomes, link_v6, origin, before, after = attempt()
    counted = None if before is None or after is None else reachability.counter_rise(before, after)
    evidence.note(origin)
    if counted is None:
        evidence.note("the gateway's deny counters could not be read over SSH: no refusal is corroborated")
    verdicts = reachability.judge(zone, gateway_leg, zip(wanted, outcomes, strict=True), counted)
    wrong = []
    for v in verdicts:
        t = v.target
        evidence.row(
            source=origin.split(":")[0], source_env=zone, destination=t.destination,
            destination_env=t.destination_env, port=t.port_label, expected=t.expected, observed=v.observed,
            icmp=v.outcome.icmp, tries=v.outcome.tries, detail=v.detail, ok=v.ok,
        )  # fmt: skip
        if not v.ok:
            wrong.append(f"{zone} -> {t.destination} ({t.address}):{t.port_label} expected {t.expected}: {v.detail}")
    if link_v6 is not None or lab.backend.probe_point(zone) is not None:
        ok, detail = reachability.ipv6_verdict(link_v6)
        evidence.row(
            source=origin.split(":")[0], source_env=zone, destination="every node of the link (IPv6 ff02::1)",
            destination_env=zone, port="icmpv6", expected="blocked", observed=detail, icmp="", tries=1,
            detail=detail, ok=ok,
        )  # fmt: skip
        if not ok:
            wrong.append(f"{zone}: {detail}")
    evidence.observe(f"{len(verdicts) - len(wrong)}/{len(verdicts)} paths as declared")
    assert not wrong, "; ".join(wrong)


def _attempt(lab, env_name, source, wanted):
    """The attempts, from the controller's probe on the segment where the backend gives one (the LXC lab; libvirt
    on the controller itself); else from the segment's first host (whose root could falsify them: the gateway's
    counters are then the only proof)."""
    point = lab.backend.probe_point(env_name)
    if point is None:
        request = reach.request([(t.address, t.port, t.proto) for t in wanted], retries=3)
        before = lab.gateway_counters()
        outcomes, _ = lab.remote.reach_detailed(str(source.address), request)
        after = lab.gateway_counters()
        why = f"the {lab.model.backend.type} backend gives the controller no probe point on {env_name}"
        return outcomes, None, f"{source.name}: attempts from host {source.name} ({why})", before, after
    return _attempt_from(lab, point, env_name, wanted)


def _attempt_from(lab, point, zone, wanted):
    """The attempts from the controller's probe on a segment or an access network, between two readings of the
    gateway's counters, all while this check holds the probe."""
    request = reach.request([(t.address, t.port, t.proto) for t in wanted], retries=3)
    request["ipv6_interface"] = probe_point.INTERFACE
    with point.attached():
        before = lab.gateway_counters()
        result = point.python(reach.SCRIPT, json.dumps(request))
        after = lab.gateway_counters()
    assert result.returncode == 0, f"the probe on {zone} failed: {result.stderr.strip()[-500:]}"
    outcomes, link_v6 = reach.parse(json.loads(result.stdout))
    origin = f"probe@{zone}: the controller's probe at {point.address} on {point.where}"
    return outcomes, link_v6, origin, before, after


@pytest.mark.control("NET-3")
def test_host_firewall_drops_inbound_by_default(lab, evidence, host_name):
    host = lab.host(host_name)
    ruleset = json.loads(lab.remote.run_as_root(str(host.address), "nft -j list ruleset").stdout or "{}")
    chains = [
        item["chain"]
        for item in ruleset.get("nftables", [])
        if "chain" in item and item["chain"].get("hook") == "input" and item["chain"].get("type") == "filter"
    ]
    evidence.expect("an input chain with policy drop")
    evidence.observe(
        ", ".join(f"{c['table']}/{c['name']} policy {c.get('policy')}" for c in chains) or "no input chain"
    )
    assert any(c.get("policy") == "drop" for c in chains), f"{host_name} has no input chain with policy drop"


@pytest.mark.control("NET-3")
def test_ssh_only_from_the_management_network(lab, evidence, host_name):
    host = lab.host(host_name)
    peers = [h for h in lab.model.hosts_in(host.environment) if h.name != host.name]
    if not peers:
        pytest.skip(f"no other host in {host.environment} to try from")
    peer = peers[0]
    ((_, _, observed),) = lab.remote.reach(str(peer.address), [(str(host.address), 22)])
    evidence.expect(f"SSH from {peer.name} (same environment, not management) blocked")
    evidence.observe(f"{peer.name} -> {host.name}:22 {OUTCOME_TEXT.get(observed, observed)}")
    assert observed in BLOCKED, f"{peer.name} reached SSH on {host.name}: {observed}"
