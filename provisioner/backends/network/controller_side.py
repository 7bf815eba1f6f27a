"""The controller's side of a site's management network, where the segments live on this machine (the LXC lab,
libvirt on a local URI): its address on the management device, routes to the segments via the gateway, and the
site's guard table."""

from __future__ import annotations

from collections.abc import Sequence

from provisioner.backends.network import hostguard, links
from provisioner.planning.desired import DesiredState
from provisioner.site import policy
from provisioner.site.model import Management, Site


def segment_routes(desired: DesiredState, management: Management) -> dict[str, str]:
    """cidr -> via: every environment's segment, through the gateway. Not the access networks: the controller has
    nothing to reach on people's workstations (and the gateway refuses management into them)."""
    via = str(management.gateway)
    return {str(s.cidr): via for s in desired.segments if s.kind == "environment"}


def receiver_guard(site: Site) -> hostguard.ReceiverGuard:
    """Who may open a connection to the controller's log receiver: the production segments (LOG-1)."""
    sources = tuple(str(e.segment.cidr) for e in policy.log_shipping_environments(site))
    return hostguard.ReceiverGuard(policy.LOG_RECEIVER_PORT, sources)


def drift(
    site: str,
    management: Management,
    device: str,
    routes: dict[str, str],
    segment_devices: Sequence[str] = (),
    receiver: hostguard.ReceiverGuard | None = None,
) -> list[str]:
    """What differs on `device` (present) from the controller's side as `wire` makes it."""
    found = []
    if f"{management.controller}/{management.cidr.prefixlen}" not in links.addresses(device):
        found.append(f"controller address {management.controller} missing on {device}")
    if links.routes_via(device) != routes:
        found.append("routes to the segments differ")
    if not hostguard.present(site):
        found.append("the controller's guard table is missing")
    elif segment_devices and not hostguard.guards_input(site):
        found.append("the controller's guard table lets the segments reach the controller")
    elif receiver is not None and not hostguard.guards_receiver(site):
        found.append("the controller's guard table lets anyone reach the log receiver")
    return found


def wire(
    site: str,
    management: Management,
    device: str,
    routes: dict[str, str],
    segment_devices: Sequence[str] = (),
    receiver: hostguard.ReceiverGuard | None = None,
) -> None:
    """Idempotent: the controller's address on `device`, the guard table (closed to `segment_devices`), exactly
    `routes` via `device`."""
    links.set_address(device, f"{management.controller}/{management.cidr.prefixlen}")
    hostguard.install(site, device, segment_devices, receiver)
    links.sync_routes(device, routes)
