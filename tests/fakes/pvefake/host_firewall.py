"""The node's own firewall in front of the API, applied to each new connection to the fake.

What pve-firewall builds into PVEFW-HOST-IN (src/PVE/Firewall.pm, ruleset_generate_host_rules), in its order:
established connections are accepted (conntrack); then the node's rules (host.fw), then the datacenter's rules,
security groups expanded, first match wins; then TCP to 8006 from the `management` IP set, which always holds the
node's local network; then the datacenter's `policy_in`, DROP by default. None of it applies while the datacenter
firewall is off or the node's own `enable` is 0 (its default is 1).

So a connection that is already open survives its own lockout, as a pooled API connection does on a real node,
and new ones are refused. Loopback is not exempted: the fake plays a node the controller reaches over a network.
Rules are matched on what decides an API connection (TCP to 8006 from an address); a rule naming an interface, a
macro or an alias is not taken to match.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .state import State

API_PORT = 8006


def admits(state: State, peer: str) -> tuple[bool, str]:
    """Whether a new connection from `peer` reaches the API, and why."""
    fw = state.firewall
    address = fw.seen_as or peer
    if not int(fw.cluster_options.get("enable", 0) or 0):
        return True, "the datacenter firewall is off"
    if not int(fw.node_options.get(state.node, {}).get("enable", 1)):
        return True, f"the firewall of node {state.node} is off"
    for where, rule in _host_rules(state):
        if _matches(state, rule, address):
            return rule["action"] == "ACCEPT", f"{where}: {rule['action']}"
    if _in_ipset(state, "management", address) or _in(address, fw.local_network):
        return True, "in the management IP set"
    policy = str(fw.cluster_options.get("policy_in") or "DROP")
    return policy == "ACCEPT", f"the datacenter's policy_in {policy}"


def _host_rules(state: State) -> list[tuple[str, dict[str, Any]]]:
    fw = state.firewall
    listed = [(f"node {state.node} rule {i}", r) for i, r in enumerate(fw.node_rules.get(state.node, []))]
    listed += [(f"datacenter rule {i}", r) for i, r in enumerate(fw.cluster_rules)]
    expanded = []
    for where, rule in listed:
        if not int(rule.get("enable", 0)):
            continue
        if rule.get("type") == "group":
            group = fw.groups.get(str(rule.get("action")))
            for i, inner in enumerate(group.rules if group else []):
                if int(inner.get("enable", 0)) and inner.get("type") == "in":
                    expanded.append((f"{where} (security group {rule['action']} rule {i})", inner))
        elif rule.get("type") == "in":
            expanded.append((where, rule))
    return expanded


def _matches(state: State, rule: dict[str, Any], address: str) -> bool:
    if rule.get("iface") or rule.get("macro"):
        return False
    if rule.get("proto") not in (None, "", "tcp", "6"):
        return False
    if rule.get("dport") and not _port_in(str(rule["dport"]), API_PORT):
        return False
    source = str(rule.get("source") or "")
    return not source or any(_source_has(state, part.strip(), address) for part in source.split(","))


def _source_has(state: State, source: str, address: str) -> bool:
    if source.startswith("+"):
        return _in_ipset(state, source[1:].split("/", 1)[-1], address)
    if "-" in source:
        first, last = source.split("-", 1)
        try:
            return ipaddress.ip_address(first) <= ipaddress.ip_address(address) <= ipaddress.ip_address(last)
        except ValueError:
            return False
    return _in(address, source)


def _in_ipset(state: State, name: str, address: str) -> bool:
    ipset = state.firewall.ipsets.get(name)
    if ipset is None:
        return False
    hits = [e for e in ipset.entries if _in(address, str(e["cidr"]))]
    return any(not int(e.get("nomatch", 0)) for e in hits) and not any(int(e.get("nomatch", 0)) for e in hits)


def _in(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _port_in(spec: str, port: int) -> bool:
    for part in spec.split(","):
        low, _, high = part.strip().partition(":")
        try:
            if int(low) <= port <= int(high or low):
                return True
        except ValueError:
            continue
    return False
