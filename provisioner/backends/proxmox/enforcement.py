"""Whether Proxmox's firewall filters the site's VMs, read back from the cluster (plan, status and NET-3), and
switching the datacenter firewall on without locking the controller out of the API.

Proxmox filters a VM's NIC only when all of these hold: the datacenter firewall is on (it is off on a new
cluster), the VM's own firewall is on, and the NIC carries `firewall=1`. The rules are then the VM's, in which the
site puts one reference to its environment's security group, with everything else dropped (`policy_in` DROP).

Switching the datacenter firewall on also starts filtering the nodes themselves: only the `management` IP set
(which always holds the node's local network) may then open the API, unless a rule says otherwise. A controller
outside that network would lose the API a few seconds later, in the middle of an apply. So the controller's
address is put into `management` first, and after the switch new connections are tried for longer than
pve-firewall takes to load the rules (it compiles them every 10 seconds); if one fails, the firewall is switched
back off over the connection still open, which the node's connection tracking keeps.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from provisioner.backends.base import HypervisorFirewall
from provisioner.backends.proxmox import firewall
from provisioner.backends.proxmox.client import PveClient, PveError
from provisioner.backends.proxmox.names import Names, nic_options
from provisioner.errors import BackendError
from provisioner.site.model import Site

MANAGEMENT_IPSET = "management"
# pve-firewall compiles and loads the rules every 10 s: a check this long after the switch has seen them in force
SETTLE_SECONDS = 12.0
CHECK_EVERY = 1.0
API_PORT = 8006


def off_note() -> str:
    return (
        "the Proxmox datacenter firewall is off: the site's security groups filter nothing; the gateway is the only "
        "wall (backend.datacenter_firewall: true switches it on)"
    )


def datacenter_on(client: PveClient) -> bool:
    return bool(int((client.get("cluster/firewall/options") or {}).get("enable", 0) or 0))


def read(client: PveClient, site: Site, names: Names, hosts: dict[str, tuple[str, str, int]]) -> HypervisorFirewall:
    """hosts: machine -> (environment, node, vmid) of the site's hosts found on the cluster."""
    reading = HypervisorFirewall(datacenter_on(client))
    if reading.enforced:
        reading.facts.append("the datacenter firewall is on")
    else:
        reading.problems.append(off_note())
    groups = {str(g.get("group")) for g in client.get("cluster/firewall/groups") or []}
    envs_in_use = sorted({env for env, _, _ in hosts.values()})
    for env in envs_in_use:
        name = names.security_group(env)
        if name not in groups:
            reading.problems.append(f"security group {name} of {env} is missing")
            continue
        found = [_rule_of(r) for r in sorted(client.get(f"cluster/firewall/groups/{name}") or [], key=_pos)]
        wanted = [_wanted(r) for r in firewall.rules_for(site, env)]
        if found != wanted:
            reading.problems.append(
                f"security group {name} holds {len(found)} rules that differ from the {len(wanted)} of the site file"
            )
        else:
            reading.facts.append(f"security group {name}: the {len(wanted)} rules of the site file, all enabled")
    for machine, (env, node, vmid) in sorted(hosts.items()):
        reading.machines[machine] = _vm_problems(client, names, env, node, vmid)
    return reading


def _pos(rule: dict[str, Any]) -> int:
    return int(rule.get("pos", 0))


def _rule_of(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (
        str(rule.get("type")),
        str(rule.get("action")),
        int(rule.get("enable", 0) or 0),
        *(str(rule.get(k) or "") for k in ("source", "dest", "proto", "dport", "macro", "iface")),
    )


def _wanted(rule: firewall.Rule) -> tuple[Any, ...]:
    params = rule.params()
    return (
        "in",
        rule.action,
        1,
        *(str(params.get(k) or "") for k in ("source", "dest", "proto", "dport", "macro", "iface")),
    )


def _vm_problems(client: PveClient, names: Names, env: str, node: str, vmid: int) -> list[str]:
    base = f"nodes/{node}/qemu/{vmid}"
    problems = []
    options = client.get(f"{base}/firewall/options") or {}
    if not int(options.get("enable", 0) or 0):
        problems.append(f"VM {vmid}: its firewall is off")
    policy = str(options.get("policy_in") or "DROP")  # pve-firewall's default for a VM
    if policy != "DROP":
        problems.append(f"VM {vmid}: inbound policy {policy}, expected DROP")
    config = client.get(f"{base}/config") or {}
    for key in sorted(k for k in config if k.startswith("net") and k[3:].isdigit()):
        settings = nic_options(str(config[key]))
        if settings.get("firewall") != "1":
            problems.append(f"VM {vmid}: {key} has no firewall=1, so its traffic bypasses the firewall")
    group = names.security_group(env)
    enabled = [r for r in sorted(client.get(f"{base}/firewall/rules") or [], key=_pos) if int(r.get("enable", 0))]
    if not any(r.get("type") == "group" and r.get("action") == group for r in enabled):
        problems.append(f"VM {vmid}: no enabled reference to security group {group}")
    for rule in enabled:
        if not (rule.get("type") == "group" and rule.get("action") == group) and rule.get("action") == "ACCEPT":
            what = ", ".join(f"{k} {rule[k]}" for k in ("source", "proto", "dport") if rule.get(k)) or "anything"
            problems.append(f"VM {vmid}: its own rule {rule.get('pos')} accepts {what} beyond the site's policy")
    return problems


# ---- switching it on -------------------------------------------------------------------------------------
def controller_address(host: str) -> str:
    """The controller's address on its connections to the API: what the node's firewall sees, unless a NAT
    rewrites it (then the check after the switch finds out)."""
    name, port = _split_host(host)
    with socket.create_connection((name, port), timeout=10) as conn:
        return str(conn.getsockname()[0])


def _split_host(host: str) -> tuple[str, int]:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest.lstrip(":") or API_PORT)
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, int(port)
    return host, API_PORT


def switch_on(
    client: PveClient, fresh: Callable[[], PveClient], names: Names, say: Callable[[str], None], settle: float
) -> None:
    """The controller's address into `management`, the datacenter firewall on, then proof from new connections
    that the API still admits the controller; else switched off again over the open connection, and an error."""
    address = controller_address(client.settings.host)
    _admit_in_management(client, names, address, say)
    say("switching the datacenter firewall on")
    client.put("cluster/firewall/options", enable=1)
    deadline = time.monotonic() + settle
    while True:
        client.get("version")  # keeps the open connection in use: the way back if new ones are refused
        try:
            fresh().call("GET", "version", {}, retry=False)
        except PveError as exc:
            _switch_back(client, address, exc)
        if time.monotonic() >= deadline:
            break
        time.sleep(min(CHECK_EVERY, max(0.0, deadline - time.monotonic())))
    say(f"the datacenter firewall is on; new API connections from {address} still admitted after {settle:.0f}s")


def _admit_in_management(client: PveClient, names: Names, address: str, say: Callable[[str], None]) -> None:
    if MANAGEMENT_IPSET not in _ipsets(client):
        say(f"creating the datacenter IP set {MANAGEMENT_IPSET}")
        try:
            client.post("cluster/firewall/ipset", name=MANAGEMENT_IPSET, comment="hosts that may manage the cluster")
        except PveError:
            if MANAGEMENT_IPSET not in _ipsets(client):  # made by a parallel apply in the meantime
                raise
    if _admitted(client, address):
        return
    say(f"adding the controller's address {address} to the IP set {MANAGEMENT_IPSET} (API and SSH)")
    try:
        client.post(
            f"cluster/firewall/ipset/{MANAGEMENT_IPSET}", cidr=address, comment=names.comment(role="controller")
        )
    except PveError:
        if not _admitted(client, address):  # another apply of the same controller may have added it first
            raise


def _ipsets(client: PveClient) -> set[str]:
    return {str(s.get("name")) for s in client.get("cluster/firewall/ipset") or []}


def _admitted(client: PveClient, address: str) -> bool:
    entries = {str(e.get("cidr")) for e in client.get(f"cluster/firewall/ipset/{MANAGEMENT_IPSET}") or []}
    return address in entries or f"{address}/32" in entries


def _switch_back(client: PveClient, address: str, cause: PveError) -> None:
    try:
        client.put("cluster/firewall/options", enable=0)
    except PveError as exc:
        raise BackendError(
            f"the datacenter firewall locked the controller ({address}) out of the API ({cause}), and switching it "
            f"back off failed too ({exc}). On a node, run `pvesh set /cluster/firewall/options --enable 0`"
        ) from exc
    raise BackendError(
        f"with the datacenter firewall on, the API refused new connections from the controller ({address}): {cause}. "
        "It was switched back off over the connection still open; nothing else changed. The node sees the "
        f"controller from another address (a NAT?) or a rule drops it: add the address the node sees to the "
        f"datacenter IP set '{MANAGEMENT_IPSET}', or remove the rule, and apply again"
    ) from cause
