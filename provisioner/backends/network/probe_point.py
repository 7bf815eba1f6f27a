"""The controller's own probe on a segment or an access network: a network namespace on the controller with one
interface on its bridge, at its reserved probe address (the last usable one). Verify runs its network attempts
from here, so no host a developer is root on decides what they report.

It exists only while verify runs; one left by a killed run is replaced by the next. Its port on the bridge carries
the label kind=probe, so NET-4 knows it for the controller's own. Checks running at once in several workers (NET-2
and ACC-3 both start from a development segment) take turns: `attached` holds a lock per probe point, so one check
never tears down the namespace another is attempting from.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provisioner.backends.network import links, names
from provisioner.controller.shell import run

INTERFACE = "eth0"  # the probe's interface inside its namespace
LOCK_DIR = Path("/run/provisioner-probes")  # root's own (0700): one lock file per probe point


@dataclass(frozen=True)
class ProbePoint:
    site: str
    segment: str  # the segment key (an environment's or an access network's name)
    bridge: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address

    @property
    def namespace(self) -> str:
        return f"provisioner-probe-{names.site_tag(self.site)}-{self.segment}"

    @property
    def port(self) -> str:
        """The host side of the probe's veth (at most 15 characters)."""
        return f"{names.site_tag(self.site)}p{names.short_hash(self.segment, 7)}"

    @property
    def labels(self) -> dict[str, str]:
        return {"site": self.site, "kind": "probe", "segment": self.segment}

    def create(self) -> None:
        self.remove()
        ns = self.namespace
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", self.port, "type", "veth", "peer", "name", INTERFACE, "netns", ns])
        run(["ip", "link", "set", self.port, "alias", links.format_alias(self.labels)])
        # the probe's own link-local address is usable at once (no duplicate detection): it must hear itself
        run(["ip", "netns", "exec", ns, "sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{INTERFACE}/accept_dad"])
        run(["ip", "-n", ns, "address", "add", str(self.address), "dev", INTERFACE])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "set", INTERFACE, "up"])
        run(["ip", "-n", ns, "route", "add", "default", "via", str(self.gateway)])
        run(["ip", "link", "set", self.port, "master", self.bridge, "up"])

    def remove(self) -> None:
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
