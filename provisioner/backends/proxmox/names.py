"""How a site's objects are named and tagged on a Proxmox cluster, so they can be found again and never confused
with another site's or the sysadmin's own."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from provisioner.planning.desired import MachineSpec
from provisioner.site.design import vnet_of
from provisioner.site.model import Site

READY_TAG = "ready"  # set last: a VM of the site without it was left half-built


def _hex(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Names:
    site: Site

    @property
    def zone(self) -> str:
        """SDN zone ids are 2-8 letters/digits; 'pv' + 4 hex of the site keeps sites apart on one cluster."""
        settings = self.site.backend
        return getattr(settings, "zone", None) or "pv" + _hex(self.site.site, 4)

    def vnet(self, segment: str) -> str:
        """VNet ids are cluster-wide, 2-8 letters/digits: the one the site file names, else the segment's first
        letters + 4 hex of the site (site validation refuses two segments on one id)."""
        return vnet_of(self.site, segment)

    def pool(self, environment: str | None) -> str:
        """One resource pool per environment; the gateway lives in the site's infrastructure pool."""
        return f"{self.site.site}-{environment or 'infra'}"

    def pools(self) -> list[str]:
        return [self.pool(None), *(self.pool(e.name) for e in self.site.environments)]

    def group(self, people_role: str) -> str:
        return f"{self.site.site}-{people_role}"

    def security_group(self, environment: str) -> str:
        """Security group names are 2-18 characters."""
        return f"{self.zone}-{environment}"

    def vm_name(self, machine: str) -> str:
        return f"{self.site.site}-{machine}"

    def machine_of(self, vm_name: str) -> str | None:
        prefix = f"{self.site.site}-"
        return vm_name[len(prefix) :] if vm_name.startswith(prefix) else None

    @property
    def site_tag(self) -> str:
        return f"site-{self.site.site}"

    def tags(self, spec: MachineSpec, fingerprint: str, ready: bool) -> list[str]:
        tags = [self.site_tag, f"kind-{spec.kind}", f"fp-{fingerprint}"]
        if spec.environment:
            tags.append(f"env-{spec.environment}")
        if spec.production:
            tags.append("tier-production")
        if ready:
            tags.append(READY_TAG)
        return sorted(tags)

    def comment(self, **facts: str) -> str:
        """Comments on pools, groups and security groups say whose they are."""
        parts = [f"site={self.site.site}", *(f"{k}={v}" for k, v in facts.items())]
        return "provisioner " + " ".join(parts)

    def owns_comment(self, comment: str | None) -> bool:
        return bool(comment) and f"provisioner site={self.site.site}" in (comment or "")


def parse_tags(value: str | None) -> set[str]:
    """Proxmox stores tags ';'-separated (some versions also accept ',' and spaces)."""
    return {t for t in re.split(r"[;, ]+", value or "") if t}


def tag_value(tags: set[str], prefix: str) -> str | None:
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), None)


def nic_options(value: str) -> dict[str, str]:
    """A netN property string (`virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=30` or
    `name=eth0,bridge=vmbr0,hwaddr=...,tag=30,ip=dhcp`) as its key=value pairs."""
    pairs = (part.partition("=") for part in value.split(","))
    return {key.strip(): val.strip() for key, _, val in pairs if key.strip()}
