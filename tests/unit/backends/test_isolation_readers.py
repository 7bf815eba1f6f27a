"""HYP-1's hypervisor-side readers for virtual machines: libvirt domain XML and Proxmox VM config."""

from __future__ import annotations

from provisioner.backends.libvirt import xmlspec
from provisioner.backends.proxmox.backend import vm_isolation


def domain(kind: str, devices: str = "") -> str:
    return f"<domain type='{kind}'><name>d</name><devices><disk type='file'/>{devices}</devices></domain>"


def test_a_plain_vm_shares_nothing():
    facts, problems = xmlspec.isolation(domain("qemu"))
    assert problems == []
    assert "own kernel" in facts[0]


def test_host_folders_and_devices_are_problems():
    _, problems = xmlspec.isolation(
        domain(
            "kvm",
            "<filesystem type='mount'><source dir='/srv/host'/><target dir='share'/></filesystem>"
            "<hostdev mode='subsystem' type='pci'><source/></hostdev>",
        )
    )
    assert problems == [
        "<filesystem> dir=/srv/host: a host folder shared into the guest",
        "<hostdev> : a host device passed through",
    ]


def test_a_container_domain_is_not_a_vm():
    _, problems = xmlspec.isolation(domain("lxc"))
    assert problems == ["domain type lxc: not a full virtual machine"]


def test_proxmox_passthrough_options_are_problems():
    facts, problems = vm_isolation({"net0": "virtio,bridge=v", "scsi0": "local:1", "hostpci0": "0000:01:00"})
    assert problems == ["hostpci0: 0000:01:00: a host PCI device passed through"]
    assert vm_isolation({"args": "-fsdev local,path=/"})[1] == [
        "args: -fsdev local,path=/: raw QEMU arguments (anything is possible)"
    ]
    assert vm_isolation({"usb0": "spice"})[1] == [], "a SPICE USB redirect hands in the viewer's device, not the host's"
    assert "own kernel" in facts[0]
