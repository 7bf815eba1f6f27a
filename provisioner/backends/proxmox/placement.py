"""Which node each of the site's VMs is built on: `backend.placement` pins, the others spread over
`backend.nodes` deterministically (to the node with the fewest of the site's VMs, ties by the order of `nodes`).
A VM that exists stays on the node it is on: apply never migrates, and an update follows the VM to its node."""

from __future__ import annotations

from collections.abc import Iterable

from provisioner.site.model import ProxmoxSettings


def place(settings: ProxmoxSettings, machines: Iterable[str], existing: dict[str, str]) -> dict[str, str]:
    """Machine name -> node for every machine in `machines` (in the order given, which decides the spread);
    `existing` holds the node of each machine that has a VM now. A machine that has one keeps its node; a new VM
    of a machine (created or replaced) goes to its pin, else the node its old VM was on when that is one of
    `nodes`, else to the node of `nodes` with the fewest of the site's VMs."""
    nodes = settings.vm_nodes
    names = list(machines)
    counts = dict.fromkeys(nodes, 0)
    for name in names:
        node = existing.get(name)
        if node in counts:
            counts[node] += 1
    chosen: dict[str, str] = {}
    for name in names:
        pinned = settings.placement.get(name)
        old = existing.get(name)
        if pinned is not None:
            chosen[name] = pinned
        elif old in counts:
            chosen[name] = old
        else:
            continue
        if old != chosen[name]:
            counts[chosen[name]] += 1
    for name in names:
        if name not in chosen:
            node = min(nodes, key=lambda n: (counts[n], nodes.index(n)))
            chosen[name] = node
            counts[node] += 1
    return chosen
