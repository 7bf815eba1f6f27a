"""Pure helpers on qemu-server style VM configs (`dict[str, str]`, as in `<vmid>.conf`)."""

from __future__ import annotations

import base64
import random
import re
from urllib.parse import unquote

from .checker import split_property_string
from .common import size_bytes
from .formats import FormatError
from .realize import NicInfo, VmInfo

NIC_MODELS = (
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
)
# Enough of qemu-server's net format to split `virtio=MAC,bridge=x,tag=5` (values are checked by the schema).
_NET_FORMAT: dict[str, dict[str, object]] = {
    "model": {"default_key": 1, "type": "string"},
    "macaddr": {"type": "string", "optional": 1},
    "bridge": {"type": "string", "optional": 1},
    "firewall": {"type": "boolean", "optional": 1},
    "link_down": {"type": "boolean", "optional": 1},
    "mtu": {"type": "integer", "optional": 1},
    "queues": {"type": "integer", "optional": 1},
    "rate": {"type": "number", "optional": 1},
    "tag": {"type": "integer", "optional": 1},
    "trunks": {"type": "string", "optional": 1},
    **{model: {"alias": "macaddr", "keyAlias": "model"} for model in NIC_MODELS},
}
CLOUDINIT_KEYS = frozenset(
    {"cicustom", "cipassword", "citype", "ciupgrade", "ciuser", "nameserver", "searchdomain", "sshkeys"}
)
DISK_RE = re.compile(r"^(ide|sata|scsi|virtio)(\d+)$")
NET_RE = re.compile(r"^net(\d+)$")
IPCONFIG_RE = re.compile(r"^ipconfig(\d+)$")
PASSWORD_MASK = "**********"

# Keys a running VM applies at once (hotplug / cloud-init); the rest waits in `pending` for a restart.
HOTPLUG_KEYS = frozenset({"name", "description", "tags", "onboot", "protection", "startup", "lock", *CLOUDINIT_KEYS})


def is_hotpluggable(key: str) -> bool:
    return key in HOTPLUG_KEYS or bool(NET_RE.match(key) or IPCONFIG_RE.match(key))


def parse_net(value: str) -> dict[str, str]:
    try:
        return split_property_string(_NET_FORMAT, value)  # type: ignore[arg-type]
    except FormatError:
        return {}


def print_net(net: dict[str, str]) -> str:
    """qemu-server prints `model=MAC` first, then the other keys alphabetically."""
    head = f"{net['model']}={net['macaddr']}" if net.get("macaddr") else net.get("model", "virtio")
    rest = [f"{k}={net[k]}" for k in sorted(net) if k not in ("model", "macaddr")]
    return ",".join([head, *rest])


def random_mac(rng: random.Random) -> str:
    """PVE generates MACs in Proxmox's BC:24:11 OUI."""
    return "BC:24:11:" + ":".join(f"{rng.randrange(256):02X}" for _ in range(3))


def with_mac(value: str, rng: random.Random, force_new: bool = False) -> str:
    net = parse_net(value)
    if not net:
        return value
    if force_new or not net.get("macaddr"):
        net["macaddr"] = random_mac(rng)
    return print_net(net)


def memory_mib(config: dict[str, str]) -> int:
    raw = config.get("memory", "512")
    m = re.search(r"(?:^|current=)(\d+)", raw)
    return int(m.group(1)) if m else 512


def vcpus(config: dict[str, str]) -> int:
    return int(config.get("cores", "1")) * int(config.get("sockets", "1"))


def agent_enabled(config: dict[str, str]) -> bool:
    raw = config.get("agent")
    if raw is None:
        return False
    first = raw.split(",", 1)[0]
    value = first.split("=", 1)[1] if first.startswith("enabled=") else first
    return value.lower() in ("1", "on", "yes", "true")


def disk_keys(config: dict[str, str]) -> list[str]:
    return sorted(k for k in config if DISK_RE.match(k) and "media=cdrom" not in config[k])


def max_disk(config: dict[str, str]) -> int:
    total = 0
    for key in disk_keys(config):
        m = re.search(r"(?:^|,)size=([^,]+)", config[key])
        if m:
            total = max(total, size_bytes(m.group(1)))
    return total


def tags_list(config: dict[str, str]) -> list[str]:
    return [t for t in re.split(r"[;,\s]+", config.get("tags", "")) if t]


def normalize_tags(value: str) -> str:
    """PVE stores tags unique, sorted and `;`-joined."""
    seen: dict[str, str] = {}
    for tag in re.split(r"[;,\s]+", value):
        if tag and tag.lower() not in seen:
            seen[tag.lower()] = tag
    return ";".join(sorted(seen.values()))


def ssh_keys_text(encoded: str) -> str:
    return unquote(encoded)


SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def valid_ssh_keys(text: str) -> bool:
    """What `ssh-keygen -l` accepts per line: [options] <type> <base64 blob naming the same type> [comment]."""
    for line in text.split("\n"):
        if not line.strip():
            continue
        fields = line.split()
        idx = next((i for i, f in enumerate(fields) if f in SSH_KEY_TYPES), None)
        if idx is None or idx + 1 >= len(fields):
            return False
        try:
            blob = base64.b64decode(fields[idx + 1], validate=True)
        except ValueError:
            return False
        if len(blob) < 4:
            return False
        length = int.from_bytes(blob[:4], "big")
        if blob[4 : 4 + length].decode("ascii", "replace") != fields[idx]:
            return False
    return True


def nics(config: dict[str, str]) -> list[tuple[int, dict[str, str]]]:
    out = []
    for key in sorted(config, key=lambda k: (len(k), k)):
        m = NET_RE.match(key)
        if m:
            out.append((int(m.group(1)), parse_net(config[key])))
    return out


def vm_info(vmid: int, config: dict[str, str]) -> VmInfo:
    nic_list = [
        NicInfo(
            index=index,
            bridge=net.get("bridge", ""),
            macaddr=net.get("macaddr", ""),
            firewall=net.get("firewall") == "1",
            tag=int(net["tag"]) if net.get("tag") else None,
        )
        for index, net in nics(config)
    ]
    ipconfig = {int(m.group(1)): v for k, v in config.items() if (m := IPCONFIG_RE.match(k))}
    return VmInfo(
        vmid=vmid,
        name=config.get("name", f"VM{vmid}"),
        nics=nic_list,
        ipconfig=dict(sorted(ipconfig.items())),
        ciuser=config.get("ciuser"),
        sshkeys=ssh_keys_text(config.get("sshkeys", "")),
        nameserver=config.get("nameserver"),
        cores=vcpus(config),
        memory=memory_mib(config),
        tags=tags_list(config),
        agent=agent_enabled(config),
    )


def config_permission(key: str) -> str | None:
    """The privilege qemu-server's check_vm_modify_config_perm asks for a key (None: checked elsewhere)."""
    if DISK_RE.match(key) or key in ("efidisk0", "tpmstate0", "boot", "bootdisk", "cdrom"):
        return "VM.Config.Disk"
    if re.match(r"^(unused|usb|hostpci)\d+$", key):
        return None
    if NET_RE.match(key):
        return "VM.Config.Network"
    if key in CLOUDINIT_KEYS or IPCONFIG_RE.match(key):
        return "VM.Config.Cloudinit"
    if key in ("cores", "cpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus", "affinity"):
        return "VM.Config.CPU"
    if re.match(r"^numa\d+$", key):
        return "VM.Config.CPU"
    if key in ("memory", "balloon", "shares"):
        return "VM.Config.Memory"
    if key in ("acpi", "hotplug", "kvm", "scsihw", "tablet", "vga", "watchdog", "audio0", "rng0") or re.match(
        r"^(serial|parallel|virtiofs)\d+$", key
    ):
        return "VM.Config.HWType"
    if key == "vmstatestorage":
        return "VM.PowerMgmt"
    return "VM.Config.Options"
