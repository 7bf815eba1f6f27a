"""The controller's probe point joins a segment's switch by one of two small strategies: a port of the segment's
Linux bridge (the LXC lab) or an access port of an Open vSwitch bridge tagged with the segment's VLAN (libvirt on
the controller). Here each is read as the commands it runs, and the labels the OVS one writes are read back the
way destroy finds a probe a killed verify left. Nothing is built: tests/lab/test_ovs_probe.py attaches a probe to
a real Open vSwitch bridge."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from provisioner.backends.libvirt import ovs
from provisioner.backends.libvirt.ovs import OvsAccessPort, Port
from provisioner.backends.network import probe_point
from provisioner.backends.network.probe_point import LinuxBridgePort, ProbePoint

BRIDGE = "pv1234-ovs"


def point(segment: str = "dev", attachment: probe_point.BridgeAttachment | None = None) -> ProbePoint:
    return ProbePoint(
        "lvapi", segment, BRIDGE, ipaddress.IPv4Interface("10.93.10.254/24"), ipaddress.IPv4Address("10.93.10.1"),
        *([attachment] if attachment else []),
    )  # fmt: skip


def written_ids(command: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("external_ids:").split("=", 1) for a in command if a.startswith("external_ids:"))


def test_by_default_the_probe_is_a_port_of_the_segments_linux_bridge():
    probe = point()
    assert isinstance(probe.attachment, LinuxBridgePort)
    assert probe.attachment.attach(probe) == [["ip", "link", "set", probe.port, "master", BRIDGE, "up"]]
    assert probe.attachment.detach(probe) == [], "deleting the veth takes it off the bridge"
    assert probe.where == BRIDGE


def test_on_open_vswitch_the_probe_is_an_access_port_with_the_segments_vlan_tag():
    probe = point(attachment=OvsAccessPort(931))
    add, up, offload = probe.attachment.attach(probe)
    assert add[:7] == ["ovs-vsctl", "--timeout=30", "--may-exist", "add-port", BRIDGE, probe.port, "tag=931"]
    # in the same transaction: the tag set again (a port left with another tag gets the segment's) and the labels
    rest = add[add.index("--") :]
    assert rest[:4] == ["--", "set", "port", probe.port] and "tag=931" in rest
    assert written_ids(add) == {"provisioner-site": "lvapi", "provisioner-kind": "probe", "provisioner-segment": "dev"}
    assert not [a for a in add if a.startswith("trunk") or a.startswith("vlan_mode")], "an access port, no trunk"
    assert up == ["ip", "link", "set", probe.port, "up"]
    assert offload == [
        "ip", "netns", "exec", probe.namespace, sys.executable, "-c", probe_point.NO_CHECKSUM_OFFLOAD, "eth0",
    ], "the probe finishes its own checksums (the userspace datapath does not)"  # fmt: skip
    assert probe.attachment.detach(probe) == [["ovs-vsctl", "--timeout=30", "--if-exists", "del-port", probe.port]]
    assert probe.where == f"{BRIDGE} VLAN 931"


def test_the_labels_the_ovs_probe_writes_mark_its_port_as_the_controllers_and_nothing_else():
    probe = point(attachment=OvsAccessPort(931))
    ids = written_ids(probe.attachment.attach(probe)[0])
    assert Port(probe.port, 931, ids).is_probe
    assert not Port("pv1234va1b2c0", 931, {"provisioner-site": "lvapi"}).is_probe, "a guest's port is not"
    assert not Port("pv1234-mgmt", 930, {"provisioner-site": "lvapi"}).is_probe, "the management port is not"
    assert not Port("eth1", 931, {}).is_probe, "a port someone else added is not"


def test_each_segment_has_its_own_namespace_and_port_under_the_sites_prefix():
    dev, prod = point("dev", OvsAccessPort(931)), point("prod", OvsAccessPort(933))
    assert dev.namespace != prod.namespace and dev.port != prod.port
    assert all(len(p.port) <= 15 for p in (dev, prod)), "a Linux interface name"
    prefix = probe_point.namespace("lvapi", "")
    assert dev.namespace.startswith(prefix) and prod.namespace.startswith(prefix)
    assert not probe_point.namespace("lvapi2", "dev").startswith(prefix), "another site's probe is not this site's"


@pytest.mark.parametrize(
    ("strategy", "expected"), [(LinuxBridgePort(), "pv1234-ovs"), (OvsAccessPort(932), "pv1234-ovs VLAN 932")]
)
def test_the_evidence_names_where_the_probe_stood(strategy, expected):
    assert point("test", strategy).where == expected


def test_the_checksum_switch_is_a_well_formed_request_the_kernel_answers_for_the_device_named():
    """The ioctl reaches the kernel's device lookup: for a device that does not exist the answer is ENODEV, not a
    Python error in building the request (the lab test reads the switch back on a real probe)."""
    result = subprocess.run(
        [sys.executable, "-c", probe_point.NO_CHECKSUM_OFFLOAD, "pvtnodevice0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "OSError: [Errno 19] No such device", result.stderr


def test_ovs_port_rows_keep_their_labels():
    """ovs-vsctl's JSON for a port's external_ids (a map) decodes to the dict is_probe reads."""
    raw = ["map", [["provisioner-kind", "probe"], ["provisioner-segment", "dev"], ["provisioner-site", "lvapi"]]]
    ids = ovs._decode(raw)
    assert isinstance(ids, dict) and Port("p", 931, ids).is_probe
