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
from provisioner.backends.proxmox.ha import ha_state, refuse_unsafe, resource_id
from provisioner.backends.proxmox.names import Names, nic_options
from provisioner.backends.proxmox.storage import boot_disk
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
    sized = settings.sizes.get(spec.size)  # type: ignore[call-overload]
    if sized is not None and (sized.disk_gb is not None or sized.storage is not None):
        # only when set: the fingerprints of sites without `sizes` stay as they were
        extra += f"/disk={sized.disk_gb}/storage={clone_storage(settings, spec.size) if settings.full_clone else None}"
    return hashlib.sha256(f"{spec.fingerprint()}/{extra}".encode()).hexdigest()[:12]


def clone_storage(settings: ProxmoxSettings, size: str) -> str | None:
    """The storage of a full clone of this size: the size's own, else `backend.storage` (None: the template's)."""
    sized = settings.sizes.get(size)  # type: ignore[call-overload]
    return (sized.storage if sized else None) or settings.storage


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
    return nic_options(str(value)).get("bridge")


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
    def create(self, spec: MachineSpec, say: Any, node: str | None = None) -> BuiltVm:
        """Clone the template (on its node) to a new VM on `node` (default: the template's), then configure and
        start it there."""
        node = node or self.node
        vmid = self._clone(spec, say, node)
        try:
            return self._finish(node, vmid, spec, say, first_boot=True)
        except BaseException:
            say(f"{spec.name}: removing VM {vmid}, left unfinished by the failure")
            try:
                self.remove(node, vmid, say)
            except PveError as cleanup:
                say(f"{spec.name}: could not remove VM {vmid} ({cleanup}); the next apply replaces it")
            raise

    def _clone(self, spec: MachineSpec, say: Any, node: str) -> int:
        """`nextid` does not reserve: two applies may get the same id, and the loser's clone fails with
        'config file already exists'. Then take the next free id and try again (bounded). A clone to another node
        than the template's runs on the template's node with `target`: qemu-server moves the new VM's config to
        the target node when the copy is done."""
        name = self.names.vm_name(spec.name)
        params: dict[str, Any] = {"name": name, "pool": self.names.pool(spec.environment)}
        if node != self.node:
            params["target"] = node
        if self.settings.full_clone:
            params["full"] = 1
            storage = clone_storage(self.settings, spec.size)
            if storage:
                params["storage"] = storage
        last: PveError | None = None
        for _ in range(ATTEMPTS):
            vmid = self.allocator.next(self.client)
            onto = f" on node {node}" if node != self.node else ""
            say(f"{spec.name}: cloning template {self.settings.template} to VM {vmid}{onto}")
            try:
                upid = self.client.call(
                    "POST",
                    f"nodes/{self.node}/qemu/{self.settings.template}/clone",
                    {"newid": vmid, **params},
                    settle=lambda v=vmid: self._is_ours(v, name, node),  # type: ignore[misc]
                )
            except PveError as exc:
                if "already exists" in str(exc) and not self._is_ours(vmid, name, node):
                    last = exc  # someone else took the id between nextid and clone
                    continue
                if "already exists" not in str(exc):
                    raise
                upid = None
            if upid is None:  # the clone started although its answer was lost: wait until it is done
                self._wait_cloned(node, vmid, spec.name)
            else:
                self.client.wait(upid, f"cloning {spec.name}")
            return vmid
        raise PveError(f"{spec.name}: no free VM id after {ATTEMPTS} attempts ({last})")

    def _grow_disk(self, node: str, vmid: int, spec: MachineSpec, current: dict[str, Any], say: Any) -> None:
        """The boot disk to the size's `disk_gb` (`backend.sizes`): `PUT …/resize` with the absolute size, which
        Proxmox leaves alone when the disk has it already and refuses to shrink (the preflight refused that)."""
        sized = self.settings.sizes.get(spec.size)  # type: ignore[call-overload]
        if sized is None or sized.disk_gb is None:
            return
        disk = boot_disk(current)
        if disk is None:
            raise PveError(f"{spec.name}: VM {vmid} has no boot disk to grow to {sized.disk_gb} GiB")
        if disk.size is not None and disk.size >= sized.disk_gb * (1 << 30):
            return
        say(f"{spec.name}: growing disk {disk.key} of VM {vmid} to {sized.disk_gb} GiB")
        self.client.run_task(
            "PUT", f"nodes/{node}/qemu/{vmid}/resize", f"resizing {spec.name}", disk=disk.key, size=f"{sized.disk_gb}G"
        )

    def _is_ours(self, vmid: int, name: str, node: str | None = None) -> bool:
        """The VM is the one this apply cloned: on the target node, or still on the template's while cloning."""
        for where in dict.fromkeys((node or self.node, self.node)):
            try:
                config = self.client.get(f"nodes/{where}/qemu/{vmid}/config")
            except PveError:
                continue
            if isinstance(config, dict) and config.get("name") == name:
                return True
        return False

    def _wait_cloned(self, node: str, vmid: int, what: str) -> None:
        """Wait until the clone's lock is gone from the VM on its target node (while the copy runs, a clone to
        another node is on the template's node)."""
        if node == self.node:
            self._wait_unlocked(node, vmid, what)
            return
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                config = self.client.get(f"nodes/{node}/qemu/{vmid}/config")
            except PveError:
                config = None
            if isinstance(config, dict) and not config.get("lock"):
                return
            time.sleep(0.5)
        raise PveError(f"{what}: VM {vmid} not on node {node} and unlocked after {LOCK_WAIT_SECONDS}s")

    def _wait_unlocked(self, node: str, vmid: int, what: str) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while time.monotonic() < deadline:
            config = self.client.get(f"nodes/{node}/qemu/{vmid}/config")
            if not config.get("lock"):
                return
            time.sleep(0.5)
        raise PveError(f"{what}: VM {vmid} still locked after {LOCK_WAIT_SECONDS}s")

    def _finish(self, node: str, vmid: int, spec: MachineSpec, say: Any, first_boot: bool) -> BuiltVm:
        """Configure, (re)start, read the host key; every call goes to the node the VM is on."""
        base = f"nodes/{node}/qemu/{vmid}"
        say(f"{spec.name}: configuring VM {vmid}")
        config = vm_config(spec, self.names, self.settings, self.controller_key, False)
        current = self.client.get(f"{base}/config") or {}
        keep_macs(config, current)
        stale = stale_settings(config, current)
        if stale:
            say(f"{spec.name}: removing {', '.join(stale)} from VM {vmid} (their segments are gone)")
            config["delete"] = ",".join(stale)
        self.client.put(f"{base}/config", **config)
        self._grow_disk(node, vmid, spec, current, say)
        self._firewall(node, vmid, spec)
        if not first_boot:
            self.stop(node, vmid, say)
        say(f"{spec.name}: starting VM {vmid}")
        if first_boot:  # a new clone: not HA-managed yet
            self.client.run_task("POST", f"{base}/status/start", f"starting {spec.name}")
        else:
            self._start(node, vmid, spec.name)
        host_key = self.read_host_key(node, vmid, spec.name)
        tags = ";".join(self.names.tags(spec, fingerprint(spec, self.settings), True))
        self.client.put(f"{base}/config", tags=tags)
        return BuiltVm(vmid, host_key)

    def _firewall(self, node: str, vmid: int, spec: MachineSpec) -> None:
        base = f"nodes/{node}/qemu/{vmid}/firewall"
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
        """Reconfigure in place (disk and data kept) and reboot, so cloud-init applies the new settings. `node` is
        where the VM is now (a migration moves it away from the site file's node)."""
        return self._finish(node, vmid, spec, say, first_boot=False)

    def start(self, node: str, vmid: int, spec: MachineSpec) -> str:
        self._start(node, vmid, spec.name)
        return self.read_host_key(node, vmid, spec.name)

    def _start(self, node: str, vmid: int, what: str) -> None:
        """Start and return once the VM runs. An HA-managed VM is started by the HA manager after the `hastart`
        task ended: wait until its status says running."""
        base = f"nodes/{node}/qemu/{vmid}/status"
        state = ha_state(self.client.get(f"{base}/current") or {})
        if state is None:
            self.client.run_task("POST", f"{base}/start", f"starting {what}")
            return
        refuse_unsafe(vmid, what, state, "start")
        self.client.run_task("POST", f"{base}/start", f"asking the HA manager to start {what}")
        self._wait_status(node, vmid, "running", what)

    def _wait_status(self, node: str, vmid: int, wanted: str, what: str) -> None:
        """Poll an HA-managed VM until its status is `wanted`, within backend.task_timeout."""
        limit = self.settings.task_timeout
        deadline = time.monotonic() + limit
        delay = 0.1
        while True:
            current = self.client.get(f"nodes/{node}/qemu/{vmid}/status/current") or {}
            if current.get("status") == wanted:
                return
            state = ha_state(current)
            if state == "error" or time.monotonic() > deadline:
                raise PveError(
                    f"{what}: VM {vmid} is HA-managed and still {current.get('status', 'unknown')} "
                    f"{'after' if state == 'error' else f'{limit}s after'} the request to the HA manager "
                    f"(HA state '{state}'); see `ha-manager status` and the node's task log"
                )
            time.sleep(delay)
            delay = min(2.0, delay * 1.5)

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
        and that is said. An HA-managed VM is stopped through the HA manager (`_ha_stop`)."""
        current = self.client.get(f"nodes/{node}/qemu/{vmid}/status/current") or {}
        self._stop_as(node, vmid, current, say)

    def _stop_as(self, node: str, vmid: int, current: dict[str, Any], say: Any) -> None:
        """`stop`, given the VM's `status/current`."""
        base = f"nodes/{node}/qemu/{vmid}/status"
        state = ha_state(current)
        if state is not None:
            self._ha_stop(node, vmid, current, state)
            return
        if current.get("status") != "running":
            return
        timeout = self._shutdown_timeout()
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

    def _shutdown_timeout(self) -> int:
        return min(self.settings.shutdown_timeout, self.settings.task_timeout - 1)  # the set value is checked

    def _ha_stop(self, node: str, vmid: int, current: dict[str, Any], state: str) -> None:
        """Ask the HA manager to shut the VM down (it stops the VM hard itself once `shutdown_timeout` ran out;
        0: at once), so it does not start the VM again, and wait until the VM is stopped."""
        refuse_unsafe(vmid, f"VM {vmid}", state, "stop")
        if current.get("status") != "running" and state == "stopped":
            return
        base = f"nodes/{node}/qemu/{vmid}/status"
        timeout = self._shutdown_timeout()
        if timeout > 0:
            what = f"asking the HA manager to shut down VM {vmid}"
            self.client.run_task("POST", f"{base}/shutdown", what, retry=False, timeout=timeout)
        else:
            self.client.run_task("POST", f"{base}/stop", f"asking the HA manager to stop VM {vmid}")
        self._wait_status(node, vmid, "stopped", f"VM {vmid}")

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
            self._wait_unlocked(node, vmid, f"VM {vmid}")
        if int(config.get("protection", 0) or 0):
            say(f"lifting the protection of VM {vmid} to remove it")
            self.client.put(f"{base}/config", protection=0)
        current = self.client.get(f"{base}/status/current") or {}
        state = ha_state(current)
        if state is None:
            self._stop_as(node, vmid, current, say)
        else:
            # Stopped through the HA manager first (it would start the VM again), then out of its resources, so
            # nothing starts it between the stop and the destroy.
            self._ha_stop(node, vmid, current, state)
            say(f"removing VM {vmid} from the HA resources")
            try:
                self.client.delete(f"cluster/ha/resources/{resource_id(vmid)}")
            except PveError as exc:
                if exc.status != 403:
                    raise
                say(f"the token may not edit HA resources ({exc}); the destroy's purge removes vm:{vmid} from them")
        disks: dict[str, Any] = {"destroy-unreferenced-disks": 1}
        self.client.run_task("DELETE", base, f"removing VM {vmid}", purge=1, **disks)
