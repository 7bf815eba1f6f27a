"""A tiny real network for the controller's probe point: a source segment (a bridge the probe attaches to), a gateway
namespace routing it to a target namespace behind it, each with the nftables rules a test gives. The gateway's
rules hold one named counter, read back with `counter()`.

    source bridge <-> <prefix>-gw0 | src [gateway ns] dst | eth0 [target ns]
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from provisioner.backends.network import links
from provisioner.backends.network.probe_point import ProbePoint


def sh(*cmd: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, input=input_text, timeout=60)


@dataclass(frozen=True)
class ProbeNetwork:
    prefix: str  # names every link and namespace, and the probe point's site
    src_net: str  # three octets: the segment the probe point joins
    dst_net: str  # three octets: the segment behind the gateway
    gateway_rules: str
    target_rules: str

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-src"

    @property
    def gateway_ns(self) -> str:
        return f"{self.prefix}-gw"

    @property
    def target_ns(self) -> str:
        return f"{self.prefix}-dst"

    @property
    def gateway_leg(self) -> str:
        return f"{self.src_net}.1"

    @property
    def target(self) -> str:
        return f"{self.dst_net}.2"

    def in_ns(self, ns: str, *cmd: str, check: bool = True, input_text: str | None = None):
        return sh("ip", "netns", "exec", ns, *cmd, check=check, input_text=input_text)

    def counter(self) -> int:
        """The packets the gateway's named counter has seen."""
        data = json.loads(self.in_ns(self.gateway_ns, "nft", "-j", "list", "counters").stdout)
        return int(next(c["counter"]["packets"] for c in data["nftables"] if "counter" in c))

    def teardown(self) -> None:
        for ns in (self.gateway_ns, self.target_ns):
            sh("ip", "netns", "delete", ns, check=False)
        sh("ip", "link", "delete", self.bridge, check=False)
        sh("ip", "link", "delete", f"{self.prefix}-gw0", check=False)

    def _build(self) -> None:
        gw, dst, veth = self.gateway_ns, self.target_ns, f"{self.prefix}-gw0"
        links.create_bridge(self.bridge, {"site": self.prefix, "kind": "segment", "segment": "src"})
        for ns in (gw, dst):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "src", "netns", gw)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", gw, "link", "add", "dst", "type", "veth", "peer", "name", "eth0", "netns", dst)
        self.in_ns(gw, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/icmp_ratelimit")
        sh("ip", "-n", gw, "address", "add", f"{self.gateway_leg}/24", "dev", "src")
        sh("ip", "-n", gw, "address", "add", f"{self.dst_net}.1/24", "dev", "dst")
        for ns, dev in ((gw, "src"), (gw, "dst"), (gw, "lo"), (dst, "eth0"), (dst, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", dst, "address", "add", f"{self.target}/24", "dev", "eth0")
        sh("ip", "-n", dst, "route", "add", "default", "via", f"{self.dst_net}.1")
        self.in_ns(gw, "nft", "-f", "-", input_text=self.gateway_rules)
        self.in_ns(dst, "nft", "-f", "-", input_text=self.target_rules)

    @contextmanager
    def probe_point(self, settle: float = 0.0) -> Iterator[ProbePoint]:
        """Build the network, attach the probe point to the source segment, and take it all down afterwards.
        `settle` waits, e.g. for the gateway's link-local address to pass duplicate detection."""
        self.teardown()
        try:
            self._build()
            time.sleep(settle)
            point = ProbePoint(
                self.prefix,
                "src",
                self.bridge,
                ipaddress.IPv4Interface(f"{self.src_net}.254/24"),
                ipaddress.IPv4Address(self.gateway_leg),
            )
            with point.attached():
                yield point
        finally:
            self.teardown()
