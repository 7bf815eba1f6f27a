"""Backends: where a site's segments and machines are built."""

from __future__ import annotations

from provisioner.backends.base import Backend
from provisioner.site.load import LoadedSite
from provisioner.workspace.site_state import SiteState


def backend_for(site: LoadedSite, state: SiteState | None = None) -> Backend:
    state = state or SiteState(site.name)
    kind = site.model.backend.type
    if kind == "lxc":
        from provisioner.backends.lxc.backend import LxcBackend

        return LxcBackend(site, state)
    if kind == "proxmox":
        from provisioner.backends.proxmox.backend import ProxmoxBackend

        return ProxmoxBackend(site, state)
    if kind == "libvirt":
        from provisioner.backends.libvirt.backend import LibvirtBackend

        return LibvirtBackend(site, state)
    raise NotImplementedError(kind)  # the model only admits implemented backends
