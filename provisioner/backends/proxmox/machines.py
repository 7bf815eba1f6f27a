"""A machine's life on Proxmox: clone from the site's template, configure (size, NICs on the VNets, cloud-init,
tags, protection, firewall), start, learn its SSH host key through the guest agent, mark it ready; and removal.

A VM is created inside its pool in the clone call itself, so an apply killed at any point leaves either nothing
or a VM that discovery finds (by pool and name) and, lacking the `ready` tag, replaces.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from provisioner.backends.proxmox.client import ATTEMPTS, PveClient, PveError
from provisioner.backends.proxmox.names import Names
from provisioner.planning.desired import MachineSpec
from provisioner.planning.planner import Kind
from provisioner.site.model import ProxmoxSettings
from provisioner.site.vocabulary import SIZE_RESOURCES
from provisioner.workspace.site_state import AUTOMATION_USER

HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
AGENT_WAIT_SECONDS = 180
LOCK_WAIT_SECONDS = 120


@dataclass(frozen=True)
class BuiltVm:
    vmid: int
    host_key: str


def fingerprint(spec: MachineSpec, settings: ProxmoxSettings) -> str:
    """What the VM was built from: the machine spec plus the Proxmox settings that shape it."""
    extra = f"{settings.template}/{settings.full_clone}/{settings.nameserver}"
    return hashlib.sha256(f"{spec.fingerprint()}/{extra}".encode()).hexdigest()[:12]


def vm_config(
    spec: MachineSpec, names: Names, settings: ProxmoxSettings, controller_key: str, ready: bool
) -> dict[str, Any]:
    cores, memory = SIZE_RESOURCES[spec.size]
    firewall = 1 if spec.kind == Kind.HOST else 0  # the gateway is the policy; hosts get the second wall
    config: dict[str, Any] = {
        "cores": cores,
        "memory": memory,
        "agent": "enabled=1",
        "onboot": 1,
        "ciuser": AUTOMATION_USER,
        # Proxmox wants the keys URL-encoded with %20 for spaces (format 'urlencoded'), not form-style '+'.
        "sshkeys": quote(controller_key.strip() + "\n", safe=""),
        "tags": ";".join(names.tags(spec, fingerprint(spec, settings), ready)),
        "description": f"Managed by provisioner: site {names.site.site}, {spec.kind} {spec.name}. "
        "Changes made here are undone by the next `provision apply`.",
        "protection": 1 if spec.production else 0,
    }
    if settings.nameserver:
        config["nameserver"] = str(settings.nameserver)
    for index, nic in enumerate(spec.nics):
        config[f"net{index}"] = f"virtio,bridge={names.vnet(nic.segment)},firewall={firewall}"
        ipconfig = f"ip={nic.address}/{nic.prefixlen}"
        if nic.gateway:
            ipconfig += f",gw={nic.gateway}"
        config[f"ipconfig{index}"] = ipconfig
    return config


def nic_mac(value: str) -> str | None:
    """The MAC address of a netN value (`virtio=BC:24:11:00:00:01,bridge=...`); None when it holds none."""
    head = str(value).split(",", 1)[0]
    model, _, mac = head.partition("=")
    return mac.upper() if mac and model.isalnum() and len(mac) == 17 else None


def _bridge(value: str) -> str | None:
    for part in str(value).split(","):
        key, _, found = part.partition("=")
        if key == "bridge":
            return found
    return None


def keep_macs(config: dict[str, Any], current: dict[str, Any]) -> None:
    """Send each NIC with the MAC address it already has on its VNet: Proxmox makes a new one for a netN sent
    without it, and cloud-init, whose instance id hashes the network configuration, would take the VM for a new
    instance and make new SSH host keys. A NIC keeps its MAC when the VNets before it change (an environment
    removed renumbers the gateway's NICs); a NIC on a VNet it was not on gets a new one."""
    had: dict[str, str] = {}
    for key, value in current.items():
        if key.startswith("net") and key[3:].isdigit():
            bridge, mac = _bridge(str(value)), nic_mac(str(value))
            if bridge is not None and mac is not None:
                had.setdefault(bridge, mac)
    for key, value in list(config.items()):
        if not (key.startswith("net") and key[3:].isdigit()):
            continue
        model, _, rest = str(value).partition(",")
        mac = had.pop(_bridge(str(value)) or "", None)
        if mac is not None and "=" not in model:
            config[key] = f"{model}={mac},{rest}" if rest else f"{model}={mac}"


def stale_settings(config: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The NICs (and their cloud-init addresses) the VM has and the new configuration does not: to be deleted, so
    no NIC is left on a VNet that goes (the VM would not start again) or twice on one that stays."""
    stale = []
    for key in sorted(current):
        for prefix in ("net", "ipconfig"):
            if key.startswith(prefix) and key[len(prefix) :].isdigit() and key not in config:
                stale.append(key)
    return stale


class VmidAllocator:
    """Hands out VM ids to the threads of one apply without giving the same id twice. Other clients on the
    cluster may still take an id first; the clone then fails and is retried with the next one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given: set[int] = set()

    def next(self, client: PveClient) -> int:
        with self._lock:
            vmid = _as_vmid(client.get("cluster/nextid"))
            while vmid in self._given:
                vmid += 1
                try:
                    vmid = _as_vmid(client.get("cluster/nextid", vmid=vmid))  # answers the id itself when free
                except PveError as exc:
                    if exc.status != 400:
                        raise
            self._given.add(vmid)
            return vmid


def _as_vmid(raw: Any) -> int:
    try:
        return int(raw)  # documented as an integer, answered as a string
    except (TypeError, ValueError) as exc:
        raise PveError(f"Proxmox answered {raw!r} for the next free VM id; expected a number") from exc


class VmLifecycle:
    def __init__(
        self,
        client: PveClient,
        names: Names,
        settings: ProxmoxSettings,
        controller_key: str,
        allocator: VmidAllocator | None = None,
    ):
        self.allocator = allocator or VmidAllocator()
        self.client = client
        self.names = names
        self.settings = settings
        self.controller_key = controller_key
        self.node = settings.node

    # ---- create --------------------------------------------------------------------------------
    def create(self, spec: MachineSpec, say: Any) -> BuiltVm:
        vmid = self._clone(spec, say)
        try:
            return self._finish(vmid, spec, say, first_boot=True)
        except BaseException:
            say(f"{spec.name}: removing VM {vmid}, left unfinished by the failure")
            try:
                self.remove(self.node, vmid, say)
            except PveError as cleanup:
                say(f"{spec.name}: could not remove VM {vmid} ({cleanup}); the next apply replaces it")
            raise

    def _clone(self, spec: MachineSpec, say: Any) -> int:
        """`nextid` does not reserve: two applies may get the same id, and the loser's clone fails with
        'config file already exists'. Then take the next free id and try again (bounded)."""
        name = self.names.vm_name(spec.name)
        params: dict[str, Any] = {"name": name, "pool": self.names.pool(spec.environment)}
        if self.settings.full_clone:
            params["full"] = 1
            if self.settings.storage:
                params["storage"] = self.settings.storage
        last: PveError | None = None
        for _ in range(ATTEMPTS):
            vmid = self.allocator.next(self.client)
            say(f"{spec.name}: cloning template {self.settings.template} to VM {vmid}")
            try:
                upid = self.client.call(
                    "POST",
                    f"nodes/{self.node}/qemu/{self.settings.template}/clone",
                    {"newid": vmid, **params},
                    settle=lambda v=vmid: self._is_ours(v, name),  # type: ignore[misc]
                )
            except PveError as exc:
                if "already exists" in str(exc) and not self._is_ours(vmid, name):
                    last = exc  # someone else took the id between nextid and clone
                    continue
                if "already exists" not in str(exc):
                    raise
                upid = None
            if upid is None:  # the clone started although its answer was lost: wait for its lock to go
                self._wait_unlocked(vmid, spec.name)
            else:
                self.client.wait(upid, f"cloning {spec.name}")
            return vmid
        raise PveError(f"{spec.name}: no free VM id after {ATTEMPTS} attempts ({last})")

    def _is_ours(self, vmid: int, name: str) -> bool:
        try:
            config = self.client.get(f"nodes/{self.node}/qemu/{vmid}/config")
        except PveError:
            return False
        return isinstance(config, dict) and config.get("name") == name

    def _wait_unlocked(self, vmid: int, what: str) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while time.monotonic() < deadline:
            config = self.client.get(f"nodes/{self.node}/qemu/{vmid}/config")
            if not config.get("lock"):
                return
            time.sleep(0.5)
        raise PveError(f"{what}: VM {vmid} still locked after {LOCK_WAIT_SECONDS}s")

    def _finish(self, vmid: int, spec: MachineSpec, say: Any, first_boot: bool) -> BuiltVm:
        base = f"nodes/{self.node}/qemu/{vmid}"
        say(f"{spec.name}: configuring VM {vmid}")
        config = vm_config(spec, self.names, self.settings, self.controller_key, False)
        current = self.client.get(f"{base}/config") or {}
        keep_macs(config, current)
        stale = stale_settings(config, current)
        if stale:
            say(f"{spec.name}: removing {', '.join(stale)} from VM {vmid} (their segments are gone)")
            config["delete"] = ",".join(stale)
        self.client.put(f"{base}/config", **config)
        self._firewall(vmid, spec)
        if not first_boot:
            self.stop(self.node, vmid, say)
        say(f"{spec.name}: starting VM {vmid}")
        self.client.run_task("POST", f"{base}/status/start", f"starting {spec.name}")
        host_key = self.read_host_key(self.node, vmid, spec.name)
        tags = ";".join(self.names.tags(spec, fingerprint(spec, self.settings), True))
        self.client.put(f"{base}/config", tags=tags)
        return BuiltVm(vmid, host_key)

    def _firewall(self, vmid: int, spec: MachineSpec) -> None:
        base = f"nodes/{self.node}/qemu/{vmid}/firewall"
        if spec.kind != Kind.HOST or spec.environment is None:
            self.client.put(f"{base}/options", enable=0)
            return
        self.client.put(f"{base}/options", enable=1, policy_in="DROP", policy_out="ACCEPT")
        group = self.names.security_group(spec.environment)
        rules = self.client.get(f"{base}/rules") or []
        wanted = [r for r in rules if r.get("type") == "group" and r.get("action") == group]
        for rule in sorted(rules, key=lambda r: -int(r.get("pos", 0))):
            if rule not in wanted[:1]:
                self.client.delete(f"{base}/rules/{rule['pos']}")
        if not wanted:
            self.client.post(f"{base}/rules", type="group", action=group, enable=1, comment="environment policy")

    # ---- update, start, read ---------------------------------------------------------------------
    def update(self, node: str, vmid: int, spec: MachineSpec, say: Any) -> BuiltVm:
        """Reconfigure in place (disk and data kept) and reboot, so cloud-init applies the new settings."""
        if node != self.node:
            raise PveError(f"{spec.name}: VM {vmid} runs on node {node}, the site file names {self.node}")
        return self._finish(vmid, spec, say, first_boot=False)

    def start(self, node: str, vmid: int, spec: MachineSpec) -> str:
        self.client.run_task("POST", f"nodes/{node}/qemu/{vmid}/status/start", f"starting {spec.name}")
        return self.read_host_key(node, vmid, spec.name)

    def read_host_key(self, node: str, vmid: int, what: str) -> str:
        """The host key travels over the authenticated API (guest agent), not the network: it can be pinned
        before the first SSH connection."""
        base = f"nodes/{node}/qemu/{vmid}/agent"
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                self.client.call("POST", f"{base}/ping", {}, retry=False)
                answer = self.client.call("GET", f"{base}/file-read", {"file": HOST_KEY_FILE}, retry=False)
                content = str((answer or {}).get("content", "")).strip()
                parts = content.split()
                if len(parts) >= 2 and parts[0].startswith("ssh-"):
                    return f"{parts[0]} {parts[1]}"
            except PveError:
                pass
            if time.monotonic() > deadline:
                raise PveError(
                    f"{what}: the QEMU guest agent of VM {vmid} did not answer within {AGENT_WAIT_SECONDS}s; "
                    "the template needs qemu-guest-agent installed and enabled"
                )
            time.sleep(0.5)

    # ---- removal -------------------------------------------------------------------------------
    def stop(self, node: str, vmid: int, say: Any = None) -> None:
        """A running VM is asked to shut down first (the guest agent, else ACPI: its services stop cleanly, a
        database flushes and closes); only if it is still running after `shutdown_timeout` is it stopped hard,
        and that is said."""
        base = f"nodes/{node}/qemu/{vmid}/status"
        if self.client.get(f"{base}/current").get("status") != "running":
            return
        timeout = min(self.settings.shutdown_timeout, self.settings.task_timeout - 1)  # the set value is checked
        if timeout > 0:
            try:
                self.client.run_task(
                    "POST", f"{base}/shutdown", f"shutting down VM {vmid}", retry=False, timeout=timeout
                )
                return
            except PveError as exc:
                if self.client.get(f"{base}/current").get("status") != "running":
                    return
                if say is not None:
                    say(f"VM {vmid} did not shut down within {timeout}s ({exc}); stopping it")
        self.client.run_task("POST", f"{base}/stop", f"stopping VM {vmid}")

    def remove(self, node: str, vmid: int, say: Any) -> None:
        """Protection is lifted only here, after the production confirmation was given to the operation."""
        base = f"nodes/{node}/qemu/{vmid}"
        try:
            config = self.client.get(f"{base}/config")
        except PveError as exc:
            if "does not exist" in str(exc):
                return
            raise
        if config.get("lock"):
            self._wait_unlocked(vmid, f"VM {vmid}")
        if int(config.get("protection", 0) or 0):
            say(f"lifting the protection of VM {vmid} to remove it")
            self.client.put(f"{base}/config", protection=0)
        self.stop(node, vmid, say)
        disks: dict[str, Any] = {"destroy-unreferenced-disks": 1}
        self.client.run_task("DELETE", base, f"removing VM {vmid}", purge=1, **disks)
