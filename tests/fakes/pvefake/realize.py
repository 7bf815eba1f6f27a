"""The Realizer protocol: how the fake hands its state to something that makes it real.

The fake calls the realizer from task workers (never while holding its state lock): `vm_started`
from the qmstart worker (raising fails the task with the exception text, as a failed `qm start`
does), `vm_stopped`/`vm_destroyed` from the stop/destroy workers, `sdn_applied` from the
reloadnetworkall worker after `PUT /cluster/sdn`. Another engineer ships an LXC-backed realizer;
`NullRealizer` keeps the fake self-contained.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class VnetInfo:
    name: str
    zone: str
    tag: int | None
    bridge: str  # the node bridge the zone sits on (vlan zones) or the vnet itself
    subnets: list[tuple[str, str | None]] = field(default_factory=list)  # (cidr, gateway)


@dataclass
class NicInfo:
    index: int
    bridge: str
    macaddr: str
    firewall: bool
    tag: int | None


@dataclass
class VmInfo:
    vmid: int
    name: str
    nics: list[NicInfo]
    ipconfig: dict[int, str]
    ciuser: str | None
    sshkeys: str  # URL-decoded, one key per line
    nameserver: str | None
    cores: int
    memory: int  # MiB
    tags: list[str]
    agent: bool


class AgentError(Exception):
    """A guest-agent command failed; the API answers 500 `Agent error: <text>`."""


@runtime_checkable
class Realizer(Protocol):
    def sdn_applied(self, vnets: dict[str, VnetInfo]) -> None: ...

    def vm_started(self, vm: VmInfo) -> None: ...

    def vm_stopped(self, vmid: int) -> None: ...

    def vm_destroyed(self, vmid: int) -> None: ...

    def agent_running(self, vmid: int) -> bool: ...

    def agent_file_read(self, vmid: int, path: str) -> str: ...

    def close(self) -> None: ...


HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key.pub"


def fake_ed25519_public_key(seed: str) -> str:
    """A well-formed (parseable) ed25519 public key blob derived from `seed`; not a real key pair."""
    raw = hashlib.sha256(seed.encode()).digest()
    key_type = b"ssh-ed25519"
    blob = len(key_type).to_bytes(4, "big") + key_type + len(raw).to_bytes(4, "big") + raw
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


class NullRealizer:
    """Realizes nothing. The guest agent answers once a VM was started; the host key is derived
    from the VM name so tests can predict it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._running: dict[int, str] = {}
        self.applied_vnets: dict[str, VnetInfo] = {}

    def sdn_applied(self, vnets: dict[str, VnetInfo]) -> None:
        with self._guard:
            self.applied_vnets = dict(vnets)

    def vm_started(self, vm: VmInfo) -> None:
        with self._guard:
            self._running[vm.vmid] = vm.name

    def vm_stopped(self, vmid: int) -> None:
        with self._guard:
            self._running.pop(vmid, None)

    def vm_destroyed(self, vmid: int) -> None:
        self.vm_stopped(vmid)

    def agent_running(self, vmid: int) -> bool:
        with self._guard:
            return vmid in self._running

    def agent_file_read(self, vmid: int, path: str) -> str:
        with self._guard:
            name = self._running.get(vmid)
        if name is not None and path == HOST_KEY_PATH:
            return f"{fake_ed25519_public_key(f'{vmid}:{name}')} root@{name}\n"
        raise AgentError(f"guest-file-open: Failed to open file '{path}': No such file or directory")

    def close(self) -> None:
        with self._guard:
            self._running.clear()
