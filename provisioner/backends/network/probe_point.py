"""The controller's own probe on a segment or an access network: a network namespace on the controller with one
interface on the segment's switch, at its reserved probe address (the last usable one). Verify runs its network
attempts from here, so no host a developer is root on decides what they report.

The namespace and its veth are the same everywhere; only how the veth's host side joins the segment differs, a
small strategy: a port of the segment's Linux bridge (the LXC lab, libvirt in bridge mode) or an access port of
an Open vSwitch bridge carrying the segment's VLAN tag (libvirt in openvswitch mode, see OvsAccessPort).

It exists only while verify runs; one left by a killed run is replaced by the next, and destroy removes it. Its
host-side link carries the label kind=probe (on Open vSwitch its port's external_ids too), so NET-4 and drift
know it for the controller's own. Checks running at once in several workers (NET-2 and ACC-3 both start from a
development segment) take turns: `attached` holds a lock per probe point, so one check never tears down the
namespace another is attempting from.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from provisioner.backends.network import links, names
from provisioner.controller.shell import run
from provisioner.site import policy
from provisioner.site.model import Site

INTERFACE = "eth0"  # the probe's interface inside its namespace
KIND = "probe"  # the kind label of its host-side link (and, on Open vSwitch, of its port)
Command = list[str]


class BridgeAttachment(Protocol):
    """How the host side of the probe's veth joins the segment's switch, as the commands that do and undo it."""

    def attach(self, point: ProbePoint) -> list[Command]: ...

    def detach(self, point: ProbePoint) -> list[Command]: ...

    def describe(self, point: ProbePoint) -> str: ...


@dataclass(frozen=True)
class LinuxBridgePort:
    """A port of the segment's own Linux bridge: one bridge per segment, nothing to tag."""

    def attach(self, point: ProbePoint) -> list[Command]:
        return [["ip", "link", "set", point.port, "master", point.bridge, "up"]]

    def detach(self, point: ProbePoint) -> list[Command]:
        return []  # deleting the veth takes it off the bridge

    def describe(self, point: ProbePoint) -> str:
        return point.bridge


LOCK_DIR = Path("/run/provisioner-probes")  # root's own (0700): one lock file per probe point


@dataclass(frozen=True)
class ProbePoint:
    site: str
    segment: str  # the segment key (an environment's or an access network's name)
    bridge: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address
    attachment: BridgeAttachment = field(default_factory=LinuxBridgePort)

    @property
    def namespace(self) -> str:
        return namespace(self.site, self.segment)

    @property
    def port(self) -> str:
        """The host side of the probe's veth (at most 15 characters)."""
        return f"{names.site_tag(self.site)}p{names.short_hash(self.segment, 7)}"

    @property
    def labels(self) -> dict[str, str]:
        return {"site": self.site, "kind": KIND, "segment": self.segment}

    @property
    def where(self) -> str:
        """Where the probe stands, for the evidence: the bridge (and the VLAN tag of its port)."""
        return self.attachment.describe(self)

    def create(self) -> None:
        self.remove()
        ns = self.namespace
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", self.port, "type", "veth", "peer", "name", INTERFACE, "netns", ns])
        run(["ip", "link", "set", self.port, "alias", links.format_alias(self.labels)])
        # the controller never answers on the segment through the probe's own port: no IPv6 on its host side (a
        # bridge port hands nothing to the controller's stack anyway, an Open vSwitch userspace datapath does)
        links.disable_ipv6(self.port)
        # the probe's own link-local address is usable at once (no duplicate detection): it must hear itself
        run(["ip", "netns", "exec", ns, "sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{INTERFACE}/accept_dad"])
        run(["ip", "-n", ns, "address", "add", str(self.address), "dev", INTERFACE])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "set", INTERFACE, "up"])
        run(["ip", "-n", ns, "route", "add", "default", "via", str(self.gateway)])
        for command in self.attachment.attach(self):
            run(command)

    def remove(self) -> None:
        for command in self.attachment.detach(self):
            run(command, check=False)
        run(["ip", "netns", "delete", self.namespace], check=False)
        run(["ip", "link", "delete", self.port], check=False)

    def python(
        self, script: str, *args: str, timeout: float = 300, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python script inside the probe's namespace, with the controller's own interpreter; `input_text`
        is its stdin (where a secret goes: never an argument, which any process may read)."""
        return run(["ip", "netns", "exec", self.namespace, sys.executable, "-c", script, *args],
                   check=False, timeout=timeout, input_text=input_text)  # fmt: skip

    @contextmanager
    def attached(self) -> Iterator[ProbePoint]:
        """The probe on its segment for the time of the block, once no other check holds it."""
        with self._turn():
            self.create()
            try:
                yield self
            finally:
                self.remove()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(LOCK_DIR / f"{self.namespace}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes, even by a killed run
            yield
        finally:
            os.close(fd)


def namespace(site: str, segment: str) -> str:
    """The probe's network namespace on a segment of a site."""
    return f"provisioner-probe-{names.site_tag(site)}-{segment}"


def spot(model: Site, segment: str) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Address]:
    """Where the probe stands on an environment's segment or an access network: its reserved last usable address
    (with the prefix length), and the gateway's leg there, its route out."""
    if segment in {a.name for a in model.access_networks}:
        network = model.access_network(segment)
        cidr, gateway, address = network.cidr, network.gateway_address, policy.probe_address(network)
    else:
        env = model.environment(segment)
        cidr, gateway, address = env.segment.cidr, env.segment.gateway, policy.probe_address(env)
    return ipaddress.IPv4Interface(f"{address}/{cidr.prefixlen}"), gateway


# Switches tx checksum offload off on an interface (ethtool's ETHTOOL_STXCSUM through the SIOCETHTOOL ioctl; no
# ethtool program needed). Run inside the probe's namespace: see OvsAccessPort.
NO_CHECKSUM_OFFLOAD = """
import array, fcntl, socket, struct, sys
value = array.array("I", [0x17, 0])  # struct ethtool_value: ETHTOOL_STXCSUM, off
request = struct.pack("16sP16x", sys.argv[1].encode(), value.buffer_info()[0])  # struct ifreq with ifr_data
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), 0x8946, request)  # SIOCETHTOOL
"""


def remove_left_over(site: str) -> list[str]:
    """The site's probes a killed verify left on this machine: each host-side link found by its label, and every
    namespace under the site's probe prefix. Returns what was removed."""
    removed = []
    for link in links.list_links():
        if link.labels.get("site") == site and link.labels.get("kind") == KIND:
            run(["ip", "link", "delete", link.name], check=False)
            removed.append(link.name)
    prefix = namespace(site, "")
    for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith(prefix):
            run(["ip", "netns", "delete", name], check=False)
            removed.append(name)
    return removed
