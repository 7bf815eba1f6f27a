"""The controller's probe as an access port of a real Open vSwitch bridge (the libvirt backend's probe point, see
tests/unit/backends/test_probe_point.py for its commands): on a bridge of its own two peers sit in the same
subnet on different VLAN tags, each listening on the same port. A probe tagged with the first reaches only the
first (TCP, and over IPv6 hears only it); one tagged with the second reaches only the second; the probe's port
carries the labels that mark it as the controller's own and its checksum offload is off; it leaves nothing
behind, and one a killed verify left is found by its labels and removed, so the bridge empties.

Open vSwitch must answer (ovsdb-server and ovs-vswitchd): the module starts the daemons that are not running and
stops only those it started, as the libvirt lab does. Marked `own_lab`, it runs in the libvirt lab's group (one
worker, one module after the other), so neither stops the daemons under the other; CI fails rather than skips
when Open vSwitch cannot be started. Everything it makes is named pvtprobe<N> (the
bridge), pvtprobe-<N>-* (the namespaces) or pvtp<N>* (the peers' veths), and is deleted in a finally.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.backends.libvirt import ovs
from provisioner.backends.network import links, probe_point
from provisioner.backends.network.probe_point import ProbePoint
from provisioner.remote import reach

pytestmark = [pytest.mark.lab, pytest.mark.own_lab, pytest.mark.timeout(300)]

N = os.getpid() % 100000
BRIDGE = f"pvtprobe{N}"
SITE = f"pvtprobe{N}"
NET = "10.198.1"
PEERS = {"a": (931, f"{NET}.1"), "b": (933, f"{NET}.2")}  # name: (VLAN tag, address)
PORT = 8080

# ETHTOOL_GTXCSUM through SIOCETHTOOL: whether an interface leaves its checksums to the NIC (1) or not (0)
TX_CHECKSUM = """
import array, fcntl, socket, struct, sys
value = array.array("I", [0x16, 0])
request = struct.pack("16sP16x", sys.argv[1].encode(), value.buffer_info()[0])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), 0x8946, request)
print(value[1])
"""
LISTENER = (
    "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    f"s.bind(('0.0.0.0', {PORT})); s.listen(64)\nwhile True: s.accept()[0].close()"
)


class LabProbe(ProbePoint):
    """The probe point as verify builds it, its namespace named for this test (pvtprobe-<N>-<segment>)."""

    @property
    def namespace(self) -> str:
        return f"pvtprobe-{N}-{self.segment}"


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=timeout)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the OVS probe test needs root (namespaces, veths, switch ports)"
    if shutil.which("ovs-vsctl") is None or shutil.which("ovs-appctl") is None:
        return "Open vSwitch is not installed (`make setup` installs it)"
    show = sh("ovs-vsctl", "--timeout=5", "show", check=False, timeout=15)
    if show.returncode != 0:
        last = (show.stderr or show.stdout).strip().splitlines()[-1:]
        return f"ovsdb-server does not answer (`ovs-vsctl show`: {' '.join(last)}); `make libvirt-up` starts it"
    if sh("ovs-appctl", "-t", "ovs-vswitchd", "--timeout=5", "version", check=False, timeout=15).returncode != 0:
        return "ovs-vswitchd is not running (ovsdb-server is); `make libvirt-up` starts it"
    return None


def _namespaces() -> list[str]:
    return [line.split(" ", 1)[0] for line in sh("ip", "netns", "list").stdout.splitlines()]


def teardown() -> None:
    for ns in _namespaces():
        if ns.startswith(f"pvtprobe-{N}-"):
            sh("ip", "netns", "delete", ns, check=False)
    for name in PEERS:
        sh("ip", "link", "delete", f"pvtp{N}{name}", check=False)
    # this run's probe ports, and any an earlier run of this test left (a run whose switch went away under it
    # could not take them off): each carries a site name pvtprobe<N>
    for name, port in ovs.ports().items():
        if port.is_probe and port.external_ids.get(ovs.SITE_KEY, "").startswith("pvtprobe"):
            ovs.delete_port(name)
    for point in (probe("dev", 931), probe("test", 933)):
        sh("ip", "link", "delete", point.port, check=False)
    for bridge in ovs.bridges():  # this run's bridge and any an earlier run left
        if bridge.startswith("pvtprobe"):
            ovs.delete_bridge(bridge)


def probe(segment: str, vlan: int, host: int = 254) -> LabProbe:
    return LabProbe(
        SITE, segment, BRIDGE, ipaddress.IPv4Interface(f"{NET}.{host}/24"), ipaddress.IPv4Address(f"{NET}.1"),
        ovs.OvsAccessPort(vlan),
    )  # fmt: skip


@pytest.fixture(scope="module")
def daemons_up() -> Iterator[None]:
    """Open vSwitch answering for the module: the daemons not running are started, and only those stopped after."""
    from provisioner.backends.libvirt import daemons

    started = daemons.start(say=lambda m: print(f"ovs probe: {m}")) if os.geteuid() == 0 else []
    try:
        reason = _missing()
        if reason:
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the OVS probe test, but {reason}")
            pytest.skip(reason)
        yield
    finally:
        daemons.stop(say=lambda m: print(f"ovs probe: {m}"), only=started)


@pytest.fixture(scope="module")
def switch(daemons_up):
    ours = {BRIDGE, *(f"pvtp{N}{name}" for name in PEERS), probe("dev", 931).port, probe("test", 933).port}
    if BRIDGE in ovs.bridges() or ours & {link.name for link in links.list_links()}:
        pytest.skip(f"{BRIDGE} or one of its ports exists already: another run of this test is under way")
    listeners = []
    try:
        datapath = "system" if Path("/sys/module/openvswitch").exists() else "netdev"
        ovs.create_bridge(BRIDGE, SITE, datapath)
        for name, (vlan, address) in PEERS.items():
            ns, host_side = f"pvtprobe-{N}-{name}", f"pvtp{N}{name}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ovs-vsctl", "--timeout=30", "add-port", BRIDGE, host_side, f"tag={vlan}")
            sh("ip", "link", "set", host_side, "up")
            sh("ip", "netns", "exec", ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad")
            sh("ip", "netns", "exec", ns, "python3", "-c", probe_point.NO_CHECKSUM_OFFLOAD, "eth0")
            sh("ip", "-n", ns, "address", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            listeners.append(subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", LISTENER]))
        time.sleep(1)
        yield BRIDGE
    finally:
        for listener in listeners:
            listener.kill()
            listener.wait(timeout=30)
        teardown()


def _link_local(ns: str) -> str:
    data = json.loads(sh("ip", "-n", ns, "-j", "-6", "address", "show", "dev", "eth0").stdout)
    return next(a["local"] for item in data for a in item["addr_info"] if a["local"].startswith("fe80:"))


def _attempt(point: ProbePoint) -> tuple[dict[str, str], reach.LinkV6 | None]:
    targets = [(address, PORT, "tcp") for _, address in PEERS.values()]
    request = reach.request(targets, ipv6_interface=probe_point.INTERFACE)
    result = point.python(reach.SCRIPT, json.dumps(request))
    assert result.returncode == 0, result.stderr
    outcomes, link = reach.parse(json.loads(result.stdout))
    return {o.address: o.outcome for o in outcomes}, link


def test_the_probe_is_on_its_segments_vlan_only(switch):
    a, b = PEERS["a"][1], PEERS["b"][1]
    with probe("dev", 931).attached() as point:
        row = ovs.ports()[point.port]
        assert (row.tag, row.is_probe) == (931, True), row
        assert row.external_ids == {
            "provisioner-site": SITE, "provisioner-kind": "probe", "provisioner-segment": "dev",
        }  # fmt: skip
        assert ovs.probe_ports(SITE) == [point.port]
        assert point.python(TX_CHECKSUM, "eth0").stdout.strip() == "0", "the probe finishes its own checksums"
        assert point.python(TX_CHECKSUM, "lo").stdout.strip() == "1", "(the reader can tell: lo leaves them)"
        reached, link = _attempt(point)
        assert reached[a] == "connected", "the peer on VLAN 931 answered through the switch"
        assert reached[b] in ("no-answer", "rejected"), f"the peer on VLAN 933 must not be reached: {reached[b]}"
        assert link is not None and link.own and set(link.own) <= set(link.heard), link
        others = set(link.heard) - set(link.own)
        assert others == {_link_local(f"pvtprobe-{N}-a")}, "over IPv6 too, only the peer on its own VLAN"
    with probe("test", 933, host=253).attached() as point:
        reached, _ = _attempt(point)
        assert reached[b] == "connected" and reached[a] in ("no-answer", "rejected"), reached
    assert ovs.probe_ports(SITE) == [], "verify's probes leave no port"
    assert not {probe("dev", 931).namespace, probe("test", 933).namespace} & set(_namespaces())
    assert sorted(ovs.ports_on(BRIDGE)) == sorted(f"pvtp{N}{name}" for name in PEERS)


def test_a_probe_a_killed_verify_left_is_replaced_then_removed_by_its_labels(switch):
    point = probe("dev", 931)
    point.create()  # a verify killed while it probed: the probe stays
    sh("ovs-vsctl", "--timeout=30", "set", "port", point.port, "tag=933")  # and its port was moved meanwhile
    point.create()  # the next verify replaces it
    assert ovs.probe_ports(SITE) == [point.port]
    assert ovs.ports()[point.port].tag == 931
    # destroy (LibvirtBackend.cleanup_site, in its order) finds it by its labels alone
    assert point.port in probe_point.remove_left_over(SITE)
    assert ovs.remove_probe_ports(SITE) == [point.port], "the switch's row outlives the link: found by its labels"
    assert point.port not in ovs.ports()
    assert point.port not in {link.name for link in links.list_links()}
    assert sorted(ovs.ports_on(BRIDGE)) == sorted(f"pvtp{N}{name}" for name in PEERS), "the bridge keeps no probe"
    sh("ip", "netns", "delete", point.namespace, check=False)  # named for this test, not under the site's prefix
