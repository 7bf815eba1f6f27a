"""In-memory state of the fake cluster (one node), inspectable by tests as `fake.state`.

Everything is guarded by `State.lock` (re-entrant): request handlers hold it for their whole
critical section, task workers take it only around their mutations so that slow realizer calls
(which may build containers) never block the API.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from .tasks import Task


def config_digest(items: dict[str, Any]) -> str:
    """sha1 over a stable rendering, as PVE hashes the raw config file."""
    text = "".join(f"{k}: {items[k]}\n" for k in sorted(items))
    return hashlib.sha1(text.encode()).hexdigest()


# What a guest's listing shows of its use while the fake runs nothing in it: no disk, network or I/O counters.
IDLE_COUNTERS: dict[str, int] = {"disk": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0}


@dataclass
class Guest:
    """What a QEMU VM and an LXC container share: the id and the config file's keys."""

    vmid: int
    config: dict[str, str]

    @property
    def lock(self) -> str | None:
        return self.config.get("lock")

    @property
    def is_template(self) -> bool:
        return self.config.get("template") == "1"

    def digest(self) -> str:
        return config_digest(self.config)

    def marks(self) -> dict[str, Any]:
        """The tags and the lock, as listings show them: only when set."""
        out: dict[str, Any] = {}
        if self.config.get("tags"):
            out["tags"] = self.config["tags"]
        if self.lock:
            out["lock"] = self.lock
        return out


@dataclass
class Vm(Guest):
    status: str = "stopped"
    pending: dict[str, str] = field(default_factory=dict)  # changes waiting for the next start
    pending_delete: set[str] = field(default_factory=set)
    started_at: float | None = None
    pid: int | None = None
    cloudinit_generated: dict[str, str] | None = None  # cloud-init keys as of the last regeneration
    node: str | None = None  # None: the fake's own node
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # [snapname] sections: name -> metadata

    @property
    def name(self) -> str:
        return self.config.get("name", f"VM {self.vmid}")


@dataclass
class Container(Guest):
    """An LXC guest as `pct` leaves its `<vmid>.conf`; only listed and read (no lifecycle in the fake)."""

    status: str = "stopped"
    node: str | None = None  # None: the fake's own node

    @property
    def name(self) -> str:
        return self.config.get("hostname", f"CT{self.vmid}")


@dataclass
class Storage:
    storage: str
    type: str
    content: str
    shared: int = 0
    disable: bool = False  # `disable` in storage.cfg: listed with enabled 0, refused by the clone API
    active: bool = True  # reachable (an NFS server down, an iSCSI target gone: 0)
    total: int = 500 << 30
    used: int = 10 << 30
    nodes: frozenset[str] | None = None  # `nodes` in storage.cfg: only these nodes have it (None: all)

    def on(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


@dataclass
class HaResource:
    """An entry of /etc/pve/ha/resources.cfg, plus the service state the CRM keeps for it in its manager status."""

    sid: str  # vm:100
    state: str = "started"  # requested: started, stopped, disabled, ignored (enabled is read as started)
    comment: str = ""
    max_restart: int | None = None
    max_relocate: int | None = None
    failback: int | None = None
    crm_state: str | None = None  # started, stopped, request_stop, error, ... (None: not seen by the CRM yet)

    @property
    def vmid(self) -> int:
        return int(self.sid.split(":", 1)[1])

    @property
    def managed(self) -> bool:
        """PVE::HA::Config::vm_is_ha_managed: configured and not `ignored`."""
        return self.state != "ignored"


@dataclass
class Bridge:
    name: str
    vlan_aware: bool = True
    nodes: frozenset[str] | None = None  # the members that have it; None: every member

    def on(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


def bridges_on(state: State, node: str) -> set[str]:
    """The names of the bridges `node` has."""
    return {name for name, bridge in state.bridges.items() if bridge.on(node)}


@dataclass
class SdnConfig:
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    vnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> SdnConfig:
        return copy.deepcopy(self)


@dataclass
class SdnState:
    pending: SdnConfig = field(default_factory=SdnConfig)  # what /etc/pve/sdn/*.cfg holds
    running: SdnConfig = field(default_factory=SdnConfig)  # .running-config after the last apply
    lock_token: str | None = None  # PVE 9.x global SDN lock
    apply_count: int = 0
    version: int = 0  # of the running config: one more per apply
    # node -> what its network was last reloaded with (version, config, ifreload's error or None); the node's
    # bridges and its SDN status come from here, not from the running config
    loaded: dict[str, tuple[int, SdnConfig, str | None]] = field(default_factory=dict)
    reload_seconds: float = 0.0  # how long after the apply task a node's own reload has brought its network up
    reload_errors: dict[str, str] = field(default_factory=dict)  # node -> what its reload fails with

    def loaded_config(self, node: str) -> SdnConfig:
        found = self.loaded.get(node)
        return found[1] if found is not None else SdnConfig()


@dataclass
class Pool:
    poolid: str
    comment: str = ""
    vms: set[int] = field(default_factory=set)
    storage: set[str] = field(default_factory=set)


@dataclass
class Token:
    tokenid: str
    secret: str
    privsep: bool = True
    expire: int = 0
    comment: str = ""


@dataclass
class User:
    userid: str
    enable: bool = True
    expire: int = 0
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    comment: str = ""
    password: str | None = None
    tokens: dict[str, Token] = field(default_factory=dict)


@dataclass
class Group:
    groupid: str
    comment: str = ""
    members: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class AclKey:
    path: str
    type: str  # user | group | token
    ugid: str
    roleid: str


@dataclass
class SecurityGroup:
    name: str
    comment: str = ""
    rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IpSet:
    name: str
    comment: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FirewallState:
    cluster_options: dict[str, Any] = field(default_factory=dict)
    cluster_rules: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, SecurityGroup] = field(default_factory=dict)
    ipsets: dict[str, IpSet] = field(default_factory=dict)
    vm_options: dict[int, dict[str, Any]] = field(default_factory=dict)
    vm_rules: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    node_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # host.fw [OPTIONS] per node
    node_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # host.fw [RULES] per node
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)  # cluster.fw [ALIASES], keyed by lower-case name
    vnet_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # sdn/firewall/<vnet>.fw [OPTIONS]
    vnet_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sdn/firewall/<vnet>.fw [RULES]
    # The node's own network (pve-firewall's local_network): always part of the `management` IP set. A documentation
    # range, so that the controller on loopback is not in it: the fake plays a node reached over the network.
    local_network: str = "192.0.2.0/24"
    seen_as: str | None = None  # the address the node sees for every client (a NAT in between); None: the peer's


@dataclass
class State:
    node: str
    version: str
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    vms: dict[int, Vm] = field(default_factory=dict)
    containers: dict[int, Container] = field(default_factory=dict)
    other_nodes: dict[str, str] = field(default_factory=dict)  # cluster members besides `node`: name -> status
    # /etc/network/interfaces entries beyond the bridges, per node: (node, iface) -> the entry as listed
    interfaces: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    storages: dict[str, Storage] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    sdn: SdnState = field(default_factory=SdnState)
    pools: dict[str, Pool] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)  # custom roles only
    acls: dict[AclKey, bool] = field(default_factory=dict)  # value: propagate
    firewall: FirewallState = field(default_factory=FirewallState)
    ha: dict[str, HaResource] = field(default_factory=dict)  # sid -> resource

    def ha_of(self, vmid: int) -> HaResource | None:
        return self.ha.get(f"vm:{vmid}")

    def node_of(self, guest: Vm | Container) -> str:
        return guest.node or self.node

    def vmid_taken(self, vmid: int) -> bool:
        """VMIDs are cluster-wide: a container's id is not free for a VM, and the reverse."""
        return vmid in self.vms or vmid in self.containers

    def pool_of(self, vmid: int) -> str | None:
        for pool in self.pools.values():
            if vmid in pool.vms:
                return pool.poolid
        return None

    def user_groups(self, userid: str) -> list[str]:
        return sorted(g.groupid for g in self.groups.values() if userid in g.members)
