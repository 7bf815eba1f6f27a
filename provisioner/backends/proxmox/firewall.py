"""The Proxmox firewall as a second wall (defence in depth): a security group per environment that mirrors the
gateway policy, attached to every NIC of the environment's VMs, with inbound dropped by default.

Proxmox inserts a new rule at the top and leaves it disabled unless told otherwise, so a group is rewritten
whole: rules posted bottom-up with enable=1. The group's comment carries a digest of its rules, which lets
`plan` see drift with one list call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from provisioner.backends.proxmox.names import Names
from provisioner.site import policy
from provisioner.site.model import Site


@dataclass(frozen=True)
class Rule:
    action: str
    comment: str
    source: str | None = None
    dest: str | None = None
    proto: str | None = None
    dport: str | None = None

    def params(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return {"type": "in", "enable": 1, **data}


def rules_for(site: Site, environment: str) -> list[Rule]:
    """Top to bottom: the environment itself, SSH and ping from management, SSH from each access network that
    reaches the environment, then the declared flows in."""
    env = site.environment(environment)
    mgmt = str(site.management.cidr)
    rules = [
        Rule("ACCEPT", "same environment", source=str(env.segment.cidr)),
        Rule("ACCEPT", "SSH from the management network", source=mgmt, proto="tcp", dport="22"),
        Rule("ACCEPT", "ping from the management network", source=mgmt, proto="icmp"),
    ]
    for network in policy.access_networks_reaching(site, environment):
        rules.append(
            Rule("ACCEPT", f"SSH from access network {network.name}", source=str(network.cidr), proto="tcp", dport="22")
        )
    for flow in policy.resolved_flows(site):
        if flow.to_env != environment or not flow.to_addresses:
            continue
        for ports in port_lists(flow.ports):
            rules.append(
                Rule(
                    "ACCEPT",
                    f"flow {flow.from_env} to {flow.to_env}",
                    source=flow.from_cidr,
                    dest=",".join(flow.to_addresses),
                    proto=flow.proto,
                    dport=ports,
                )
            )
    return rules


# pve-firewall refuses a rule whose port list holds more than 15 numbers (iptables' multiport limit)
PORTS_PER_RULE = 15


def port_lists(ports: tuple[int, ...]) -> list[str]:
    """The flow's ports (the site file gives at least one) as Proxmox takes them: 15 at most per rule, so a longer
    list becomes several rules."""
    listed = [str(p) for p in ports]
    return [",".join(listed[i : i + PORTS_PER_RULE]) for i in range(0, len(listed), PORTS_PER_RULE)]


def digest(rules: list[Rule]) -> str:
    return hashlib.sha256(json.dumps([asdict(r) for r in rules], sort_keys=True).encode()).hexdigest()[:12]


def group_comment(names: Names, environment: str, rules: list[Rule]) -> str:
    return names.comment(env=environment, rules=digest(rules))


def drift(site: Site, names: Names, groups: list[dict[str, Any]]) -> dict[str, str]:
    """environment -> what is wrong with its security group (missing or rules changed)."""
    found = {str(g.get("group")): str(g.get("comment") or "") for g in groups}
    problems = {}
    for env in site.environments:
        name = names.security_group(env.name)
        want = group_comment(names, env.name, rules_for(site, env.name))
        if name not in found:
            problems[env.name] = f"security group {name} missing"
        elif found[name] != want:
            problems[env.name] = f"security group {name} rules differ from the site file"
    return problems
