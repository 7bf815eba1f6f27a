"""Make the fake Proxmox VE's started VMs real: each one is an LXC container on this machine.

A started VM becomes an overlay clone of the lab's base image (the one the LXC backend uses), with one
veth per NIC on a local Linux bridge per SDN VNet, and what cloud-init would have given it: the VM name
as hostname, the `ciuser` account with the `sshkeys`, the `ipconfigN` addresses and the `nameserver`.
The project's roles and conformance probes then run against it over SSH as they would against a VM.

What is emulated and what is not:
- One bridge per VNet, named `<lab>-<vnet>` (a VLAN-zone VNet's bridge is named after the VNet; the lab
  prefix keeps several fakes apart and still fits the 15-character interface name limit). Separate
  bridges stand in for VLAN separation: this kernel has no 802.1Q devices, so VNet tags are not applied.
  A NIC given as `bridge=<zone bridge>,tag=<T>` lands on the VNet of that bridge and tag.
- The Proxmox firewall (NIC `firewall=1`, VM/cluster rules) is NOT emulated: the flag is ignored.
- cores, memory, tags and the agent flag are not applied (the fake keeps them in the VM config);
  `ip=dhcp` leaves the interface up without an address (there is no DHCP server in the lab).
- cloud-init runs "per instance": its files are written at the first start and again only when the
  cloud-init settings change (as a changed Proxmox cloud-init drive would), never over the roles' work.
- The guest agent is running while the container runs; file reads go through `lxc-attach`.
- `controller` emulates the physical network the real controller sits on: it takes its address on the
  VNet whose subnet holds it, with routes to the other subnets via that subnet's gateway (the site
  gateway VM). Nothing else changes on the host: no NAT, no default route, no forwarding, and an
  nftables guard table drops anything the host would route between the lab and elsewhere.

Every host resource is labelled (bridge alias, container label file) so `close()` and `cleanup_lab()`
find them again after a crash.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.backends.lxc import base_image, containers, idmap
from provisioner.backends.lxc.containers import SeedFile
from provisioner.backends.network import hostguard, links
from provisioner.workspace.hostkeys import new_host_key
from provisioner.workspace.site_state import AUTOMATION_USER

from .realize import AgentError

if TYPE_CHECKING:
    from .realize import NicInfo, VmInfo, VnetInfo

log = logging.getLogger(__name__)

MANAGED_BY = "pvefake"  # container label; the LXC backend only looks at "provisioner"
LINK_KIND = "pvefake-vnet"  # bridge alias label
LAB_ID = re.compile(r"[a-z][a-z0-9]{0,5}")
# pve-sdn-vnet-id; also what keeps `<lab>-<vnet>` within the kernel's 15 characters
VNET_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{0,6}[A-Za-z0-9]")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
SUDOERS_FILE = "/etc/sudoers.d/90-cloud-init-users"  # where cloud-init puts its default user's sudo rule
ATTACH_TIMEOUT = 30


class RealizeError(RuntimeError):
    """The VM cannot be made real; the message becomes the failed task's exit status."""


class GuestFileNotFound(AgentError, FileNotFoundError):
    """A guest-agent file read of a missing file: the fake answers `Agent error: ...` as PVE does."""


def bridge_name(lab: str, vnet: str) -> str:
    return f"{lab}-{vnet}"


def container_name(lab: str, vmid: int) -> str:
    return f"{lab}-{vmid}"


def guard_name(lab: str) -> str:
    """The hostguard 'site' whose nftables table fences this lab's management bridge."""
    return f"pvefake_{lab}"


@dataclass(frozen=True)
class ControllerHome:
    """Where the controller sits: the VNet, subnet and gateway holding its address."""

    vnet: str
    network: ipaddress.IPv4Network
    gateway: str | None


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    home: str


class LxcRealizer:
    """The fake's Realizer protocol (see realize.py) on LXC; safe to call from several task threads at once."""

    def __init__(self, lab: str, controller: str | None = None) -> None:
        if not LAB_ID.fullmatch(lab):
            raise ValueError(f"lab id {lab!r}: 1-6 characters, a lowercase letter then letters or digits")
        self.lab = lab
        self.controller = ipaddress.IPv4Address(controller) if controller else None
        self.lxcpath = base_image.lxc_path()
        self._lock = threading.Lock()  # guards _vnets, _vm_locks and the host's bridges, addresses and routes
        self._vnets: dict[str, VnetInfo] = {}
        self._vm_locks: dict[int, threading.Lock] = {}
        self._base_lock = threading.Lock()  # the first start may build the base image: once, not per thread
        self._rootfs: Path | None = None

    # ---- SDN -----------------------------------------------------------------------------------
    def sdn_applied(self, vnets: dict[str, VnetInfo]) -> None:
        for name in vnets:
            if not VNET_ID.fullmatch(name):
                raise RealizeError(f"vnet id {name!r} is not a valid Proxmox SDN vnet id")
        with self._lock:
            self._vnets = dict(vnets)
            present = {link.name: link for link in links.list_links()}
            for name in vnets:
                self._ensure_bridge(name, present)
            self._place_controller()
            self._prune_bridges()

    def _ensure_bridge(self, vnet: str, present: dict[str, links.Link]) -> None:
        name = bridge_name(self.lab, vnet)
        link = present.get(name)
        if link is not None and _owned_by(link, self.lab):
            if not link.labels:
                # created but not yet labelled when a previous run died: start it over
                links.delete_link(name)
            else:
                return
        elif link is not None:
            raise RealizeError(f"interface {name} exists and is not lab {self.lab}'s; not touching it")
        links.create_bridge(name, {"kind": LINK_KIND, "lab": self.lab, "vnet": vnet})

    def _our_bridges(self) -> dict[str, str]:
        """{vnet: bridge} of every labelled bridge of this lab, applied or left over."""
        return {
            link.labels["vnet"]: link.name
            for link in links.list_links()
            if _owned_by(link, self.lab) and "vnet" in link.labels
        }

    def _controller_home(self) -> ControllerHome | None:
        if self.controller is None:
            return None
        for vnet in self._vnets.values():
            for cidr, gateway in vnet.subnets:
                network = ipaddress.ip_network(cidr, strict=False)
                if isinstance(network, ipaddress.IPv4Network) and self.controller in network:
                    return ControllerHome(vnet.name, network, gateway)
        return None

    def _place_controller(self) -> None:
        """Idempotent: the controller's address and routes on its VNet's bridge, none on any other."""
        home = self._controller_home()
        bridges = self._our_bridges()
        home_bridge = bridges.get(home.vnet) if home else None
        # strip the other bridges first: the controller may have moved, and its old routes would look foreign
        for bridge in bridges.values():
            if bridge != home_bridge:
                links.sync_routes(bridge, {})
                for address in links.addresses(bridge):
                    links.delete_address(bridge, address)
        if home is None or home_bridge is None:
            hostguard.remove(guard_name(self.lab))
            return
        wanted_address = f"{self.controller}/{home.network.prefixlen}"
        for address in links.addresses(home_bridge) - {wanted_address}:
            links.delete_address(home_bridge, address)
        self._refuse_foreign_routes([str(home.network)], home_bridge)
        links.set_address(home_bridge, wanted_address)
        routes = self._wanted_routes(home)
        self._refuse_foreign_routes(list(routes), home_bridge)
        links.sync_routes(home_bridge, routes)
        hostguard.install(guard_name(self.lab), home_bridge)

    def _wanted_routes(self, home: ControllerHome) -> dict[str, str]:
        """Every other IPv4 subnet of every VNet, via the gateway of the controller's own subnet."""
        if home.gateway is None:
            return {}
        wanted = {}
        for vnet in self._vnets.values():
            for cidr, _gateway in vnet.subnets:
                network = ipaddress.ip_network(cidr, strict=False)
                if isinstance(network, ipaddress.IPv4Network) and not network.overlaps(home.network):
                    wanted[str(network)] = home.gateway
        return wanted

    def _refuse_foreign_routes(self, cidrs: list[str], bridge: str) -> None:
        """A lab subnet the host already routes elsewhere (its uplink, another lab) must not be hijacked."""
        for cidr in cidrs:
            for route in links.routes_to(cidr):
                if route.get("dev") != bridge:
                    raise RealizeError(
                        f"subnet {cidr} is already routed via {route.get('dev')} on this host; "
                        f"lab {self.lab} will not take it over"
                    )

    def _prune_bridges(self) -> None:
        """Remove bridges of VNets gone from the SDN config once no container is plugged into them."""
        all_links = links.list_links()
        in_use = {link.master for link in all_links if link.master}
        for vnet, bridge in self._our_bridges().items():
            if vnet not in self._vnets and bridge not in in_use:
                links.delete_link(bridge)

    # ---- VMs -----------------------------------------------------------------------------------
    def vm_started(self, vm: VmInfo) -> None:
        rootfs = self._base()
        with self._vm_lock(vm.vmid):
            name = container_name(self.lab, vm.vmid)
            directory = self.lxcpath / name
            labels = self._labels_of(vm.vmid)
            nics = self._resolve_nics(vm)
            if labels is not None and labels.get("state") == "ready" and (directory / "config").is_file():
                if containers.is_running(name):
                    return
                self._refresh(vm, directory, labels, nics)
            else:
                if directory.exists():  # half-built by a run that died
                    containers.remove(self.lxcpath, name, containers.is_running(name))
                self._create(vm, rootfs, nics)
            containers.start(name)

    def vm_stopped(self, vmid: int) -> None:
        with self._vm_lock(vmid):
            name = container_name(self.lab, vmid)
            if self._labels_of(vmid) is not None and containers.is_running(name):
                containers.stop(name)
        with self._lock:
            self._prune_bridges()

    def vm_destroyed(self, vmid: int) -> None:
        with self._vm_lock(vmid):
            name = container_name(self.lab, vmid)
            if self._labels_of(vmid) is not None:
                containers.remove(self.lxcpath, name, containers.is_running(name))
        with self._lock:
            self._prune_bridges()

    def agent_running(self, vmid: int) -> bool:
        return self._labels_of(vmid) is not None and containers.is_running(container_name(self.lab, vmid))

    def agent_file_read(self, vmid: int, path: str) -> str:
        """The guest agent's file-read: the file as the running guest sees it (a stopped VM has no agent)."""
        if not self.agent_running(vmid):
            raise AgentError(f"VM {vmid} is not running")
        result = subprocess.run(
            ["lxc-attach", "-n", container_name(self.lab, vmid), "--clear-env", "--", "cat", "--", path],
            capture_output=True,
            timeout=ATTACH_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            # the texts qemu-guest-agent gives, which the fake passes on after "Agent error: "
            if "No such file" in message:
                raise GuestFileNotFound(f"guest-file-open: Failed to open file '{path}': No such file or directory")
            raise AgentError(f"guest-file-open: Failed to open file '{path}': {message}")
        return result.stdout.decode(errors="replace")

    def close(self) -> None:
        with self._lock:
            cleanup_lab(self.lab)
            self._vnets = {}
            self._vm_locks.clear()

    # ---- VM helpers ----------------------------------------------------------------------------
    @contextmanager
    def _vm_lock(self, vmid: int) -> Iterator[None]:
        """One operation per VM at a time; different VMs proceed in parallel."""
        with self._lock:
            lock = self._vm_locks.setdefault(vmid, threading.Lock())
        with lock:
            yield

    def _labels_of(self, vmid: int) -> dict[str, str] | None:
        """The container's labels if it is this lab's; a foreign directory of that name is an error."""
        directory = self.lxcpath / container_name(self.lab, vmid)
        if not directory.exists():
            return None
        labels = containers.read_labels(directory)
        if labels is None or labels.get("managed-by") != MANAGED_BY or labels.get("lab") != self.lab:
            raise RealizeError(f"{directory} exists and is not lab {self.lab}'s; not touching it")
        return labels

    def _base(self) -> Path:
        """The base image's rootfs, built if missing; the host's inotify budget raised for the containers."""
        with self._base_lock:
            if self._rootfs is None:
                containers.raise_host_limits(log.info)
                self._rootfs = base_image.ensure_base(self.lxcpath, say=log.info)
            return self._rootfs

    def _resolve_nics(self, vm: VmInfo) -> list[tuple[NicInfo, str]]:
        """Each NIC with the host bridge it plugs into, as Proxmox resolves `bridge=` at start."""
        with self._lock:
            vnets = dict(self._vnets)
            bridges = self._our_bridges()
        resolved = []
        for nic in sorted(vm.nics, key=lambda n: n.index):
            vnet = _vnet_of(nic, vnets)
            if vnet is None or vnet not in bridges:
                raise RealizeError(
                    f"bridge '{nic.bridge}' does not exist in lab {self.lab} "
                    f"(only applied SDN VNets are realized; net{nic.index} of VM {vm.vmid})"
                )
            resolved.append((nic, bridges[vnet]))
        return resolved

    def _create(self, vm: VmInfo, rootfs: Path, nics: list[tuple[NicInfo, str]]) -> None:
        name = container_name(self.lab, vm.vmid)
        directory = self.lxcpath / name
        delta = directory / "overlay" / "delta"
        key = new_host_key(vm.name)
        labels = {
            "managed-by": MANAGED_BY,
            "lab": self.lab,
            "vmid": str(vm.vmid),
            "name": vm.name,
            "base": base_image.base_name(),
            "host_key": key.public,
            "cloudinit": cloudinit_digest(vm),
        }
        files = [*containers.identity_files(key), *cloudinit_files(vm, rootfs, delta)]
        containers.create_clone(self.lxcpath, name, rootfs, labels, self._config(vm, rootfs, delta, nics), files)

    def _refresh(self, vm: VmInfo, directory: Path, labels: dict[str, str], nics: list[tuple[NicInfo, str]]) -> None:
        """A restart: NICs come from the current VM config; cloud-init re-runs only if its settings changed."""
        rootfs = self.lxcpath / labels["base"] / "rootfs"
        delta = directory / "overlay" / "delta"
        containers.write_config(directory, self._config(vm, rootfs, delta, nics))
        digest = cloudinit_digest(vm)
        if labels.get("cloudinit") != digest:
            containers.write_seed(rootfs, delta, cloudinit_files(vm, rootfs, delta))
            containers.write_labels(directory, {**labels, "name": vm.name, "cloudinit": digest})

    def _config(self, vm: VmInfo, rootfs: Path, delta: Path, nics: list[tuple[NicInfo, str]]) -> str:
        lines = containers.config_header(
            f"managed by provisioner's Proxmox fake: lab={self.lab} vmid={vm.vmid} name={vm.name}",
            vm.name,
            rootfs,
            delta,
        )
        default_route_taken = False
        for position, (nic, bridge) in enumerate(nics):
            address, gateway = parse_ipconfig(vm.ipconfig.get(nic.index))
            # LXC allows one default route; a guest given several keeps the first, as Linux would
            if gateway is not None and (address is None or default_route_taken):
                gateway = None
            default_route_taken = default_route_taken or gateway is not None
            lines += containers.nic_config(
                position,
                link=bridge,
                # Proxmox's cloud-init network config names netN `ethN`
                name=f"eth{nic.index}",
                hwaddr=nic.macaddr.lower(),
                address=address,
                gateway=gateway,
            )
        return "\n".join(lines) + "\n"


# ---- cloud-init emulation ------------------------------------------------------------------------
def parse_ipconfig(text: str | None) -> tuple[str | None, str | None]:
    """`ip=A/P,gw=G` -> ("A/P", "G"); `ip=dhcp`, IPv6-only or nothing -> no static IPv4 address."""
    fields = dict(part.split("=", 1) for part in (text or "").split(",") if "=" in part)
    address = fields.get("ip")
    if address is None or address == "dhcp":
        return None, None
    # a malformed value fails the start here with its own message, not later inside lxc-start
    ipaddress.IPv4Interface(address)
    gateway = fields.get("gw")
    if gateway is not None:
        ipaddress.IPv4Address(gateway)
    return address, gateway


def cloudinit_digest(vm: VmInfo) -> str:
    settings = {"name": vm.name, "user": vm.ciuser, "keys": vm.sshkeys, "dns": vm.nameserver}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cloudinit_files(vm: VmInfo, rootfs: Path, delta: Path) -> list[SeedFile]:
    """What cloud-init writes from Proxmox's settings: hostname, the default user and its keys, resolv.conf."""
    files = containers.hostname_files(vm.name)
    user = vm.ciuser or AUTOMATION_USER  # no ciuser: the image's default user, here the automation account
    if not USER_NAME.fullmatch(user):
        raise RealizeError(f"ciuser {user!r} is not a valid user name")
    account = find_account(rootfs, delta, user)
    if account is None:
        account, user_files = new_account_files(user, rootfs, delta)
        files += user_files
    keys = [line.strip() for line in vm.sshkeys.splitlines() if line.strip()]
    if keys:
        files += containers.authorized_keys_files(account.home, account.uid, account.gid, "\n".join(keys) + "\n")
    if vm.nameserver:
        servers = re.split(r"[\s,;]+", vm.nameserver.strip())
        files.append(SeedFile("/etc/resolv.conf", "".join(f"nameserver {s}\n" for s in servers).encode()))
    return files


def find_account(rootfs: Path, delta: Path, user: str) -> Account | None:
    passwd = containers.effective_file(rootfs, delta, "/etc/passwd").read_text()
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user:
            return Account(int(fields[2]), int(fields[3]), fields[5])
    return None


def new_account_files(user: str, rootfs: Path, delta: Path) -> tuple[Account, list[SeedFile]]:
    """A user as cloud-init's default user is made: own group, home from /etc/skel, NOPASSWD sudo."""
    uid = _free_id(rootfs, delta)
    account = Account(uid, uid, f"/home/{user}")
    days = int(time.time() // 86400)
    files = [
        _appended(rootfs, delta, "/etc/passwd", f"{user}:x:{uid}:{uid}::{account.home}:/bin/bash"),
        _appended(rootfs, delta, "/etc/group", f"{user}:x:{uid}:"),
        # "!" locks the password: key logins only, as with cloud-init's lock_passwd
        _appended(rootfs, delta, "/etc/shadow", f"{user}:!:{days}:0:99999:7:::"),
        _appended(rootfs, delta, "/etc/gshadow", f"{user}:!::"),
        SeedFile(account.home, b"", 0o755, uid, uid, kind="dir"),
        SeedFile(
            SUDOERS_FILE, f"# cloud-init default user (Proxmox fake)\n{user} ALL=(ALL) NOPASSWD:ALL\n".encode(), 0o440
        ),
    ]
    for skel in sorted((rootfs / "etc/skel").iterdir()):
        if skel.is_file() and not skel.is_symlink():
            files.append(SeedFile(f"{account.home}/{skel.name}", skel.read_bytes(), 0o644, uid, uid))
    return account, files


def _free_id(rootfs: Path, delta: Path) -> int:
    """The next uid that is also a free gid, from 1000 up, as useradd picks it."""
    taken = set()
    for path in ("/etc/passwd", "/etc/group"):
        for line in containers.effective_file(rootfs, delta, path).read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                taken.add(int(fields[2]))
    return max([999, *(i for i in taken if 1000 <= i < 60000)]) + 1


def _appended(rootfs: Path, delta: Path, inner_path: str, line: str) -> SeedFile:
    """The container's current file plus one line, keeping its owner and mode (/etc/shadow is root:shadow)."""
    current = containers.effective_file(rootfs, delta, inner_path)
    text = current.read_text()
    if text and not text.endswith("\n"):
        text += "\n"
    st = current.stat()
    uid, gid = idmap.to_inside(st.st_uid), idmap.to_inside(st.st_gid)
    return SeedFile(inner_path, f"{text}{line}\n".encode(), st.st_mode & 0o7777, uid, gid)


# ---- lookups and cleanup -------------------------------------------------------------------------
def _vnet_of(nic: NicInfo, vnets: dict[str, VnetInfo]) -> str | None:
    """A NIC names its VNet directly, or a zone bridge plus the VNet's tag (the same layer-2 network)."""
    if nic.bridge in vnets:
        return nic.bridge
    if nic.tag is not None:
        for vnet in vnets.values():
            if vnet.bridge == nic.bridge and vnet.tag == nic.tag:
                return vnet.name
    return None


def _owned_by(link: links.Link, lab: str) -> bool:
    """Labelled as this lab's, or an unlabelled bridge under its prefix (a run died before labelling it)."""
    if link.labels:
        return link.labels.get("kind") == LINK_KIND and link.labels.get("lab") == lab
    return link.kind == "bridge" and link.name.startswith(f"{lab}-")


def cleanup_lab(lab: str) -> None:
    """Remove every container, bridge (with its addresses and routes) and guard table of lab, e.g. after a crash."""
    lxcpath = base_image.lxc_path()
    running = containers.running_names()
    for found in containers.find_labelled(lxcpath, {"managed-by": MANAGED_BY, "lab": lab}):
        containers.remove(lxcpath, found.name, found.name in running)
    for link in links.list_links():
        if _owned_by(link, lab):
            links.delete_link(link.name)
    hostguard.remove(guard_name(lab))
