"""The state a site file asks for, in terms every backend understands: segments and machines."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from provisioner.planning.planner import Kind
from provisioner.site.model import Site

MGMT = "mgmt"
GATEWAY = "gateway"

SegmentKind = Literal["management", "environment", "access"]


@dataclass(frozen=True)
class SegmentSpec:
    key: str  # environment name, access network name, or "mgmt" for the management network
    environment: str | None  # None for management and the access networks
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address  # the environment gateway's address on this segment
    vlan: int | None
    production: bool = False
    # an access network is where people's workstations are: a bridge or VLAN and a leg of the gateway, built like
    # an environment's segment, but no machine of the site is ever placed on it
    kind: SegmentKind = "environment"


@dataclass(frozen=True)
class NicSpec:
    segment: str
    name: str  # interface name inside the machine
    address: ipaddress.IPv4Address
    prefixlen: int
    gateway: ipaddress.IPv4Address | None  # default route, if any


@dataclass(frozen=True)
class MachineSpec:
    name: str
    kind: Kind
    environment: str | None
    nics: tuple[NicSpec, ...]
    roles: tuple[str, ...] = ()
    size: str = "small"
    template: str = "debian12"
    production: bool = False
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def address(self) -> ipaddress.IPv4Address:
        """The address the controller reaches it at."""
        return self.nics[0].address

    def fingerprint(self) -> str:
        """Changes when anything a backend builds from this spec changes."""
        data = asdict(self)
        data.pop("labels")
        data.pop("roles")  # roles are configured by Ansible, not built by the backend
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DesiredState:
    site: str
    segments: tuple[SegmentSpec, ...]
    machines: tuple[MachineSpec, ...]

    def segment(self, key: str) -> SegmentSpec:
        return next(s for s in self.segments if s.key == key)


def gateway_interface_names(site: Site, naming: str = "named") -> dict[str, str]:
    """The gateway's interface per segment key.

    "named": the backend names interfaces itself (LXC: `mgmt`, `seg-<env>`, `acc-<access network>`); "indexed":
    cloud-init names the NICs of a VM in order (`eth0` on the management network, then `eth1`... per
    environment, then one per access network).
    """
    envs = [e.name for e in site.environments]
    access = [a.name for a in site.access_networks]
    keys = [MGMT, *envs, *access]
    if naming == "indexed":
        return {key: f"eth{index}" for index, key in enumerate(keys)}
    return {MGMT: "mgmt", **{key: f"seg-{key}" for key in envs}, **{key: f"acc-{key}" for key in access}}


def desired_state(site: Site, naming: str = "named") -> DesiredState:
    mgmt = site.management
    names = gateway_interface_names(site, naming)
    segments = [SegmentSpec(MGMT, None, mgmt.cidr, mgmt.gateway, mgmt.vlan, kind="management")]
    gateway_nics = [NicSpec(MGMT, names[MGMT], mgmt.gateway, mgmt.cidr.prefixlen, None)]
    machines: list[MachineSpec] = []
    for env in site.environments:
        seg = env.segment
        production = env.tier == "production"
        segments.append(SegmentSpec(env.name, env.name, seg.cidr, seg.gateway, seg.vlan, production))
        gateway_nics.append(NicSpec(env.name, names[env.name], seg.gateway, seg.cidr.prefixlen, None))
        for host in site.hosts_in(env.name):
            nic = NicSpec(env.name, "eth0", host.address, seg.cidr.prefixlen, seg.gateway)
            machines.append(
                MachineSpec(
                    name=host.name,
                    kind=Kind.HOST,
                    environment=env.name,
                    nics=(nic,),
                    roles=tuple(host.roles),
                    size=host.size,
                    template=host.template,
                    production=production,
                )
            )
    for network in site.access_networks:
        address = network.gateway_address
        segments.append(SegmentSpec(network.name, None, network.cidr, address, network.vlan, kind="access"))
        gateway_nics.append(NicSpec(network.name, names[network.name], address, network.cidr.prefixlen, None))
    gateway = MachineSpec(name=GATEWAY, kind=Kind.GATEWAY, environment=None, nics=tuple(gateway_nics), size="small")
    return DesiredState(site.site, tuple(segments), (gateway, *machines))
