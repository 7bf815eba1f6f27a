"""libvirt XML for the site's networks, domains and volumes, and reading the site's labels back from it.

Labels live in a <metadata> element in our own namespace, written in the same call that defines the
network or domain: a resource without them is not the site's and is never touched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

NS = "urn:x-provisioner:libvirt:1"
PREFIX = "provisioner"
ET.register_namespace(PREFIX, NS)


def _labels_element(tag: str, labels: dict[str, str], qualified: bool = True) -> ET.Element:
    """<provisioner:TAG key="value" .../>: one element, the labels as plain attributes."""
    return ET.Element(f"{{{NS}}}{tag}" if qualified else tag, {k: v for k, v in sorted(labels.items())})


def read_labels(xml: str, tag: str) -> dict[str, str] | None:
    """The labels of a network or domain XML, or None when it carries none of ours."""
    found = ET.fromstring(xml).find(f"metadata/{{{NS}}}{tag}")
    return dict(found.attrib) if found is not None else None


def metadata_xml(tag: str, labels: dict[str, str]) -> str:
    """The labels element for virDomainSetMetadata, which adds the namespace itself."""
    return ET.tostring(_labels_element(tag, labels, qualified=False), encoding="unicode")


# ---- networks ------------------------------------------------------------------------------------------
def network_xml(name: str, labels: dict[str, str], bridge: str, vlan: int | None, portgroup: str | None) -> str:
    """A libvirt network on an existing bridge: an OVS bridge with a VLAN-tagged portgroup, or a Linux bridge."""
    root = ET.Element("network")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "metadata").append(_labels_element("segment", labels))
    ET.SubElement(root, "forward", mode="bridge")
    ET.SubElement(root, "bridge", name=bridge)
    if portgroup is not None:
        ET.SubElement(root, "virtualport", type="openvswitch")
        group = ET.SubElement(root, "portgroup", name=portgroup, default="yes")
        if vlan is not None:
            ET.SubElement(ET.SubElement(group, "vlan"), "tag", id=str(vlan))
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class NetworkShape:
    bridge: str | None
    openvswitch: bool
    portgroups: dict[str, int | None]  # portgroup -> VLAN tag


def network_shape(xml: str) -> NetworkShape:
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    groups: dict[str, int | None] = {}
    for group in root.findall("portgroup"):
        tag = group.find("vlan/tag")
        groups[group.get("name", "")] = int(tag.get("id", "0")) if tag is not None else None
    virtualport = root.find("virtualport")
    return NetworkShape(
        bridge.get("name") if bridge is not None else None,
        virtualport is not None and virtualport.get("type") == "openvswitch",
        groups,
    )


# ---- domains -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NicXml:
    network: str
    portgroup: str | None
    mac: str
    target: str  # the tap device's name on the hypervisor


@dataclass(frozen=True)
class DomainSpec:
    name: str
    labels: dict[str, str]
    domain_type: str  # kvm | qemu
    vcpus: int
    memory_mib: int
    kernel: str
    initrd: str
    cmdline: str
    disk: str
    seed: str
    nics: tuple[NicXml, ...]
    tb_cache_mib: int
    console_log: str | None
    # Open vSwitch's userspace (netdev) datapath passes frames between taps without finishing checksums the
    # guest left to the NIC: offloads must be off, or every TCP segment arrives with a bad checksum.
    checksum_offload: bool = True


def domain_xml(spec: DomainSpec) -> str:
    root = ET.Element("domain", type=spec.domain_type)
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "metadata").append(_labels_element("machine", spec.labels))
    ET.SubElement(root, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(root, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = spec.kernel
    ET.SubElement(os_el, "initrd").text = spec.initrd
    ET.SubElement(os_el, "cmdline").text = spec.cmdline
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")
    if spec.domain_type == "qemu":
        # without a bound, each TCG guest reserves a translation cache of about 900 MB
        ET.SubElement(ET.SubElement(features, "tcg"), "tb-cache", unit="MiB").text = str(spec.tb_cache_mib)
    if spec.domain_type == "kvm":
        ET.SubElement(root, "cpu", mode="host-passthrough")
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    _disk(devices, spec.disk, "qcow2", "vda", readonly=False)
    _disk(devices, spec.seed, "raw", "vdb", readonly=True)
    for nic in spec.nics:
        interface = _interface(nic)
        devices.append(interface)
        if not spec.checksum_offload:
            driver = ET.SubElement(interface, "driver", name="qemu")
            ET.SubElement(driver, "host", csum="off", gso="off", tso4="off", tso6="off", ecn="off", ufo="off")
            ET.SubElement(driver, "guest", csum="off", tso4="off", tso6="off", ecn="off", ufo="off")
        ET.SubElement(interface, "rom", enabled="no")  # direct kernel boot: no PXE ROM to load
    serial = ET.SubElement(devices, "serial", type="pty")
    if spec.console_log:
        ET.SubElement(serial, "log", file=spec.console_log, append="off")
    ET.SubElement(devices, "console", type="pty")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    rng = ET.SubElement(devices, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    return ET.tostring(root, encoding="unicode")


def _disk(devices: ET.Element, path: str, fmt: str, target: str, readonly: bool) -> None:
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    if readonly:
        ET.SubElement(disk, "readonly")


@dataclass(frozen=True)
class DomainNic:
    network: str | None
    portgroup: str | None
    target: str | None
    mac: str | None


def domain_nics(xml: str) -> list[DomainNic]:
    root = ET.fromstring(xml)
    nics = []
    for interface in root.findall("devices/interface"):
        source, target, mac = interface.find("source"), interface.find("target"), interface.find("mac")
        nics.append(
            DomainNic(
                source.get("network") if source is not None else None,
                source.get("portgroup") if source is not None else None,
                target.get("dev") if target is not None else None,
                mac.get("address") if mac is not None else None,
            )
        )
    return nics


def domain_disks(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    return [s.get("file", "") for s in root.findall("devices/disk/source") if s.get("file")]


def interface_xml(nic: NicXml) -> str:
    """One interface element, for virDomainUpdateDeviceFlags (put a moved port back)."""
    return ET.tostring(_interface(nic), encoding="unicode")


def _interface(nic: NicXml) -> ET.Element:
    interface = ET.Element("interface", type="network")
    ET.SubElement(interface, "mac", address=nic.mac)
    source = ET.SubElement(interface, "source", network=nic.network)
    if nic.portgroup is not None:
        source.set("portgroup", nic.portgroup)
    ET.SubElement(interface, "target", dev=nic.target)
    ET.SubElement(interface, "model", type="virtio")
    return interface


# ---- volumes -------------------------------------------------------------------------------------------
def volume_xml(name: str, capacity: int, fmt: str, backing: str | None = None) -> str:
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(ET.SubElement(root, "target"), "format", type=fmt)
    if backing is not None:
        store = ET.SubElement(root, "backingStore")
        ET.SubElement(store, "path").text = backing
        ET.SubElement(store, "format", type="qcow2")
    return ET.tostring(root, encoding="unicode")


def pool_xml(name: str, path: str) -> str:
    root = ET.Element("pool", type="dir")
    ET.SubElement(root, "name").text = name
    ET.SubElement(ET.SubElement(root, "target"), "path").text = path
    return ET.tostring(root, encoding="unicode")


def pool_target(xml: str) -> str:
    path = ET.fromstring(xml).find("target/path")
    return (path.text or "") if path is not None else ""


# Devices that hand a guest something of the host's own: a folder, a PCI/USB device, a host character device.
HOST_SHARING_DEVICES = {
    "filesystem": "a host folder shared into the guest",
    "hostdev": "a host device passed through",
    "shmem": "memory shared with the host",
}


def isolation(xml: str) -> tuple[list[str], list[str]]:
    """Facts and problems of a domain's separation from its host (HYP-1): a virtual machine with its own kernel,
    nothing of the host's handed in."""
    root = ET.fromstring(xml)
    kind = root.get("type", "")
    facts = [f"domain type {kind}: a virtual machine with its own kernel"]
    problems = []
    if kind not in ("kvm", "qemu"):
        problems.append(f"domain type {kind or 'missing'}: not a full virtual machine")
    devices = root.find("devices")
    for element in devices if devices is not None else []:
        if element.tag in HOST_SHARING_DEVICES:
            source = element.find("source")
            where = " ".join(f"{k}={v}" for k, v in (source.attrib.items() if source is not None else []))
            problems.append(f"<{element.tag}> {where}: {HOST_SHARING_DEVICES[element.tag]}".replace("  ", " "))
    return facts, problems
