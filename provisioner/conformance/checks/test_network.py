"""NET-1..3: segments, the reachability matrix between environments, host firewalls."""

from __future__ import annotations

import ipaddress
import json

import pytest

from provisioner.backends import backend_for
from provisioner.remote.ssh import OUTCOME_TEXT
from provisioner.site import policy

BLOCKED = {"rejected", "timeout"}
OPEN_PATH = {"connected", "refused"}  # the packet got there: the path is open


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


def _matrix_targets(lab, source):
    rows = []
    for target in lab.model.hosts:
        if target.environment == source.environment:
            continue
        for port in [22, *policy.service_ports(target)]:
            allowed = any(
                f.from_env == source.environment and str(target.address) in f.to_addresses and port in f.ports
                for f in policy.resolved_flows(lab.model)
            )
            rows.append((target, port, allowed))
    return rows


UDP_PROBE_PORT = 9  # discard: never a declared flow, so the gateway must refuse it itself


@pytest.mark.control("NET-2")
def test_reachability_from_each_environment(lab, evidence, source_name):
    source = lab.host(source_name)
    gateway = str(lab.model.environment(source.environment).segment.gateway)
    rows = _matrix_targets(lab, source)
    outcomes = {
        (a, p): o for a, p, o in lab.remote.reach(str(source.address), [(str(t.address), p) for t, p, _ in rows])
    }
    others = sorted({str(t.address) for t, _, _ in rows})
    refused_by = {
        a: o for a, _, o in lab.remote.reach(str(source.address), [(a, UDP_PROBE_PORT) for a in others], proto="udp")
    }
    evidence.expect(
        "declared flows open; every other path to another environment refused by the gateway itself "
        f"({gateway}), whatever the destination host's own firewall does"
    )
    wrong = []
    for target, port, allowed in rows:
        observed = outcomes[(str(target.address), port)]
        ok = observed in OPEN_PATH if allowed else observed in BLOCKED
        evidence.row(
            source=source.name, source_env=source.environment, destination=target.name,
            destination_env=target.environment, port=port, expected="open" if allowed else "blocked",
            observed=observed, detail=OUTCOME_TEXT.get(observed, observed), ok=ok,
        )  # fmt: skip
        if not ok:
            wrong.append(
                f"{source.name} -> {target.name}:{port} expected {'open' if allowed else 'blocked'}, {observed}"
            )
    for target in sorted({t.name for t, _, _ in rows}):
        address = str(lab.host(target).address)
        observed = refused_by[address]
        ok = observed == f"icmp-from:{gateway}"
        evidence.row(
            source=source.name, source_env=source.environment, destination=target,
            destination_env=lab.host(target).environment, port=f"{UDP_PROBE_PORT}/udp", expected=f"icmp-from:{gateway}",
            observed=observed, detail="who refused the datagram", ok=ok,
        )  # fmt: skip
        if not ok:
            wrong.append(f"{source.name} -> {target}: the gateway let it through ({observed}, expected the gateway)")
    evidence.observe(f"{len(rows) + len(others) - len(wrong)}/{len(rows) + len(others)} paths as declared")
    assert not wrong, "; ".join(wrong)


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
