"""VMs managed by the Proxmox HA manager (pve-ha-manager).

For such a VM, qemu-server's start, stop and shutdown calls do not act: they start a short task (`hastart`,
`hastop`) that only hands a request to the HA manager (`ha-manager set vm:N --state started`, `crm-command stop
vm:N <timeout>`), and that task ends OK while the VM is still in its old state; the cluster resource manager and
the node's local resource manager carry the request out some seconds later (a stop request with a timeout is a
shutdown that is forced when the timeout runs out). So the backend asks through the same calls and then waits,
polling the VM's status, until the state is reached. A VM the HA manager is moving, fencing or recovering, or one
in its error state, is left alone: the apply is refused with what to do.

`status/current` tells whether a VM is HA-managed (`ha.managed`, `ha.state`): it needs only VM.Audit on the VM,
whereas the HA resource API needs Sys.Audit (read) and Sys.Console (write) on `/`.
"""

from __future__ import annotations

from typing import Any

from provisioner.errors import InputError

# HA service states (pve-ha-manager's Manager.pm) in which an apply must not act on the VM, and what to do.
UNSAFE_STATES = {
    "error": "the HA manager gave up on it; fix the cause, then `ha-manager set vm:{vmid} --state disabled` "
    "and `ha-manager set vm:{vmid} --state started`",
    "migrate": "the HA manager is migrating it; wait until that has finished",
    "relocate": "the HA manager is relocating it; wait until that has finished",
    "fence": "its node failed and is being fenced; wait until the HA manager has recovered it on another node",
    "recovery": "the HA manager is recovering it on another node; wait until that has finished",
    "freeze": "its node is shutting down or in maintenance; wait until the node is back",
}


def ha_state(current: dict[str, Any]) -> str | None:
    """The HA service state from `status/current` when the VM is HA-managed, else None (not managed, or
    `ignored`: qemu-server then acts on the VM directly)."""
    ha = current.get("ha")
    if not isinstance(ha, dict) or not int(ha.get("managed", 0) or 0):
        return None
    return str(ha.get("state") or "started")


def refuse_unsafe(vmid: int, name: str, state: str | None, doing: str) -> None:
    if state in UNSAFE_STATES:
        raise InputError(
            f"{name}: VM {vmid} is HA-managed and in HA state '{state}', so the apply will not {doing} it: "
            f"{UNSAFE_STATES[state].format(vmid=vmid)}. Then run apply again."
        )


def resource_id(vmid: int) -> str:
    return f"vm:{vmid}"
