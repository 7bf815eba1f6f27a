"""NET-2's attempts and their reading: what to try from an environment's segment, or from an access network
(people's workstations), and what each outcome proves.

A refused path passes only when the gateway itself refused it: the UDP datagram's ICMP error comes from the
gateway's leg on the source segment as "administratively prohibited" (type 3, code 13), and the gateway's own deny
counter for that (from, to) pair rose by at least the number of attempts it should have refused. An answer from
the target's own firewall, a "host unreachable" (the gateway routed it to a host that is down), or a refusal the
gateway did not count, all fail. Silence proves nothing by itself: an expected-open path that stays silent fails,
and an expected-blocked one passes only on the gateway's count (the count is per pair, so traffic others send on
the same pair adds to it: an answered refusal is the stronger proof, and the evidence says which one each row has).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from provisioner.remote.reach import ADMIN_PROHIBITED, ICMP_CODES, LinkV6, Outcome
from provisioner.site import policy
from provisioner.site.model import Site

MGMT_ZONE = "mgmt"
GATEWAY_TABLE = "provisioner_gateway"  # roles/env_gateway: env_gateway_table, where the deny counters are
GATEWAY_INPUT_COUNTER = "deny_gateway_input"
UDP_PROBE_PORT = 9  # discard: never a declared flow, so the gateway must refuse it itself
OPEN_PATH = {"connected", "refused"}  # the packet got there: the path is open


def deny_counter(source: str, destination: str) -> str:
    """The gateway's named counter of denied (from, to) traffic (roles/env_gateway)."""
    return f"deny_{_zone(source)}_to_{_zone(destination)}"


def _zone(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass(frozen=True)
class Target:
    destination: str  # a host's name, "gateway (leg on ZONE)" or "controller"
    destination_env: str  # an environment, an access network (a gateway leg on it), or mgmt
    address: str
    port: int
    proto: str  # tcp | udp
    expected: str  # open | blocked
    counter: str | None  # the gateway counter that must count a blocked attempt

    @property
    def port_label(self) -> int | str:
        return self.port if self.proto == "tcp" else f"{self.port}/udp"


def targets(site: Site, source_env: str) -> list[Target]:
    """Every path out of an environment's segment: each host elsewhere on SSH and its service ports (open only
    where a flow declares it), a UDP datagram to each (who refuses it), every leg of the gateway, the controller."""
    flows = policy.resolved_flows(site)
    found: list[Target] = []
    for host in site.hosts:
        if host.environment == source_env:
            continue
        counter = deny_counter(source_env, host.environment)
        for port in [22, *policy.service_ports(host)]:
            allowed = any(
                f.from_env == source_env and str(host.address) in f.to_addresses and port in f.ports for f in flows
            )
            expected = "open" if allowed else "blocked"
            found.append(Target(host.name, host.environment, str(host.address), port, "tcp", expected, counter))
        found.append(Target(host.name, host.environment, str(host.address), UDP_PROBE_PORT, "udp", "blocked", counter))
    return found + _gateway_and_controller(site, source_env)


def access_targets(site: Site, access_network: str) -> list[Target]:
    """Every path out of an access network (people's workstations): SSH to each host of the environments it
    reaches (open), SSH to every other host and every service port anywhere (blocked: an access network reaches
    SSH and nothing else), a UDP datagram to each host (who refuses it), every leg of the gateway, the
    controller. A blocked attempt is counted by the gateway as deny_<access network>_to_<environment>."""
    network = site.access_network(access_network)
    found: list[Target] = []
    for host in site.hosts:
        counter = deny_counter(network.name, host.environment)
        for port in [22, *policy.service_ports(host)]:
            expected = "open" if port == 22 and host.environment in network.reaches else "blocked"
            found.append(Target(host.name, host.environment, str(host.address), port, "tcp", expected, counter))
        found.append(Target(host.name, host.environment, str(host.address), UDP_PROBE_PORT, "udp", "blocked", counter))
    return found + _gateway_and_controller(site, network.name)


def _gateway_and_controller(site: Site, source: str) -> list[Target]:
    """SSH to every leg of the gateway (each environment's, each access network's, management's) and to the
    controller: refused from every segment and every access network."""
    legs = [(env.name, str(env.segment.gateway)) for env in site.environments]
    legs += [(network.name, str(network.gateway_address)) for network in site.access_networks]
    legs.append((MGMT_ZONE, str(site.management.gateway)))
    found = [
        Target(f"gateway (leg on {zone})", zone, address, 22, "tcp", "blocked", GATEWAY_INPUT_COUNTER)
        for zone, address in legs
    ]
    controller = str(site.management.controller)
    found.append(Target("controller", MGMT_ZONE, controller, 22, "tcp", "blocked", deny_counter(source, MGMT_ZONE)))
    return found


@dataclass(frozen=True)
class Verdict:
    target: Target
    outcome: Outcome
    ok: bool
    observed: str
    detail: str


def judge(
    source_env: str,
    gateway_leg: str,
    attempts: Iterable[tuple[Target, Outcome]],
    counted: dict[str, int] | None,
) -> list[Verdict]:
    """Each attempt's verdict. `counted`: how much each deny counter rose during the attempts (None: the counters
    could not be read, so no refusal is corroborated)."""
    pairs = list(attempts)
    needed: dict[str, int] = {}
    for target, outcome in pairs:
        if target.expected == "blocked" and target.counter and outcome.outcome not in OPEN_PATH:
            needed[target.counter] = needed.get(target.counter, 0) + outcome.tries
    verdicts = []
    for target, outcome in pairs:
        corroborated = (
            counted is not None
            and target.counter is not None
            and counted.get(target.counter, 0) >= needed.get(target.counter, 0)
        )
        count_text = _count_text(target, counted, needed)
        if target.expected == "open":
            ok = outcome.outcome in OPEN_PATH
            detail = "the path is open" if ok else _silence_or(outcome, "the declared flow does not pass")
        elif target.proto == "udp":
            ok, detail = _udp_verdict(outcome, gateway_leg)
            ok = ok and corroborated
            detail = f"{detail}; {count_text}"
        else:
            ok, detail = _tcp_blocked_verdict(outcome)
            ok = ok and corroborated
            detail = f"{detail}; {count_text}"
        verdicts.append(Verdict(target, outcome, ok, outcome.outcome, detail))
    return verdicts


def _count_text(target: Target, counted: dict[str, int] | None, needed: dict[str, int]) -> str:
    if target.counter is None:
        return "no gateway counter names this path"
    if counted is None:
        return "the gateway's deny counters could not be read: the refusal is not corroborated"
    rose, want = counted.get(target.counter, 0), needed.get(target.counter, 0)
    verdict = "corroborates" if rose >= want else "does NOT corroborate"
    return f"the gateway's counter {target.counter} rose by {rose} for {want} refused attempts: {verdict}"


def _silence_or(outcome: Outcome, otherwise: str) -> str:
    if outcome.outcome == "no-answer":
        return f"no answer after {outcome.tries} tries: silence proves nothing"
    return f"{otherwise} ({outcome.outcome})"


def _tcp_blocked_verdict(outcome: Outcome) -> tuple[bool, str]:
    if outcome.outcome in OPEN_PATH:
        return False, f"the path is open ({outcome.outcome}): the gateway let it through"
    if outcome.outcome == "rejected":
        return True, "refused with an ICMP error"
    if outcome.outcome == "no-answer":
        return True, f"no answer after {outcome.tries} tries (an ICMP answer lost to rate limiting?)"
    return False, f"ended with {outcome.outcome}: not a refusal"


def _udp_verdict(outcome: Outcome, gateway_leg: str) -> tuple[bool, str]:
    if outcome.outcome == "no-answer":
        return True, f"no ICMP error after {outcome.tries} tries (lost to rate limiting?): only the count can prove it"
    if not outcome.outcome.startswith("icmp-from:"):
        return False, f"ended with {outcome.outcome}: no ICMP error named who refused it"
    sender = outcome.outcome.removeprefix("icmp-from:")
    code = ICMP_CODES.get(outcome.icmp_code or -1, f"code {outcome.icmp_code}")
    if sender != gateway_leg:
        return False, f"{outcome.icmp} from {sender}, not the gateway ({gateway_leg}): the gateway let it through"
    if (outcome.icmp_type, outcome.icmp_code) != ADMIN_PROHIBITED:
        return False, f"{outcome.icmp} from the gateway: {code}, not its reject (the gateway routed it)"
    return True, f"{outcome.icmp} from the gateway ({gateway_leg}): {code}"


def counter_rise(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after.get(name, 0) - before.get(name, 0) for name in after}


def parse_counters(nft_json: dict[str, Any]) -> dict[str, int]:
    """Packets per named counter from `nft -j list counters`."""
    found = {}
    for item in nft_json.get("nftables", []):
        counter = item.get("counter")
        if isinstance(counter, dict) and "name" in counter:
            found[str(counter["name"])] = int(counter.get("packets", 0))
    return found


def ipv6_verdict(link: LinkV6 | None) -> tuple[bool, str]:
    """Nothing answers IPv6 on the segment but the probe itself; a probe that did not hear itself proves nothing."""
    if link is None:
        return False, "not probed: IPv6 was not tried from this segment"
    others = [a for a in link.heard if a not in link.own]
    if not set(link.own) & set(link.heard):
        return False, f"inconclusive: the probe did not hear its own answer (own {link.own}, heard {link.heard})"
    if others:
        return False, f"IPv6 answers on the link from {', '.join(others)}"
    return True, f"only the probe itself ({', '.join(link.own)}) answered"
