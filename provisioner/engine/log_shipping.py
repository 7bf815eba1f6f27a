"""LOG-1's controller side at apply: certificates for the receiver and each production host, and the receiver
running on the controller's management address (see provisioner.backends.network.log_receiver)."""

from __future__ import annotations

from collections.abc import Callable

from provisioner.backends.network import log_receiver
from provisioner.site import policy
from provisioner.site.model import Site
from provisioner.workspace import log_tls
from provisioner.workspace.site_state import SiteState


def prepare(state: SiteState, site: Site, say: Callable[[str], None]) -> log_receiver.LogReceiver | None:
    """Make what shipping needs and start the receiver when this machine holds the controller's address. Returns
    the receiver, or None when the site has no production host."""
    hosts = policy.log_shipping_hosts(site)
    if not hosts:
        return None
    state.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_tls.ensure_receiver(state.secrets_dir, site.site, site.management.controller)
    for host in hosts:
        log_tls.ensure_host(state.secrets_dir, site.site, host.name)
    receiver = log_receiver.for_site(state, site)
    if not receiver.holds_address():
        say(
            f"warning: this machine does not hold the controller's address {site.management.controller}, so the "
            f"production hosts' journals are not received here (LOG-1 fails until the receiver runs there)"
        )
        return receiver
    if receiver.ensure():
        say(f"log receiver started on {receiver.url}; production journals arrive in {receiver.folder}")
    return receiver


def stop(state: SiteState, site: Site) -> None:
    log_receiver.for_site(state, site).stop()
