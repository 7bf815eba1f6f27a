"""Whether an SDN apply took effect, read per node from the state each node reports.

`PUT /cluster/sdn` ends with a task that only starts a network reload on each node (pve-network,
PVE::API2::Network::SDN `reload`): a node it cannot reach is a warning, and a node whose interfaces then fail to
come up is not its concern. Each node reports its own view of the running SDN configuration instead
(`GET /nodes/{node}/sdn/zones` and `…/zones/{zone}/content`, published by its pvestatd): `pending` until the node
has reloaded this version, `error` with a message where the interfaces did not come up, `available` once they
did. A VM started on a VNet its node has not brought up fails, or sits on no network.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from provisioner.backends.proxmox.client import PveClient, PveError

POLL_FIRST = 0.2
POLL_CAP = 2.0


def confirm_applied(
    client: PveClient, zone: str, vnets: set[str], timeout: float, say: Callable[[str], None] | None = None
) -> None:
    """Wait until every node reports `zone` and each of `vnets` available; an error on any node, an offline
    node or the timeout fails with what each node said."""
    if not vnets:
        return
    nodes = {str(n.get("node")): str(n.get("status", "unknown")) for n in client.get("nodes") or []}
    down = sorted(n for n, status in nodes.items() if status != "online")
    if down:
        raise PveError(
            f"the SDN configuration was applied, but node {', '.join(down)} is not online: its networks cannot be "
            "confirmed, and a VM moved there would have none"
        )
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST
    while True:
        waiting = [w for node in sorted(nodes) for w in _node_waits(client, node, zone, vnets)]
        if not waiting:
            if say is not None:
                say(f"SDN networks up on {len(nodes)} node(s): {', '.join(sorted(vnets))}")
            return
        if time.monotonic() > deadline:
            raise PveError(
                f"the SDN configuration was applied, but after {timeout:.0f}s (backend.task_timeout) not every node "
                f"has brought the site's networks up: {'; '.join(waiting[:6])}"
            )
        time.sleep(delay)
        delay = min(POLL_CAP, delay * 1.5)


def _node_waits(client: PveClient, node: str, zone: str, vnets: set[str]) -> list[str]:
    """What `node` still lacks; raises on an error it reports."""
    zones = {str(z.get("zone")): str(z.get("status")) for z in client.get(f"nodes/{node}/sdn/zones") or []}
    if zone not in zones:
        return [f"node {node} does not list zone {zone} yet"]
    content = {str(c.get("vnet")): c for c in client.get(f"nodes/{node}/sdn/zones/{zone}/content") or []}
    waits = []
    for vnet in sorted(vnets):
        found = content.get(vnet)
        status = str(found.get("status")) if found else "not listed"
        detail = str(found.get("statusmsg") or "") if found else ""
        if status == "error":
            raise PveError(
                f"the SDN configuration was applied, but on node {node} VNet {vnet} did not come up: "
                f"{detail or 'error'} (see the node's network configuration and `ifreload -a` there)"
            )
        if status != "available":
            waits.append(f"node {node}: VNet {vnet} {status}" + (f" ({detail})" if detail else ""))
    if zones[zone] == "error" and not waits:
        raise PveError(f"the SDN configuration was applied, but node {node} reports zone {zone} in error")
    return waits
