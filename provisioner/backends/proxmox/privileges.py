"""What the API token must hold, per ACL path, and the least-privilege recipe that grants exactly that.

Every requirement below comes from the `permissions` of an endpoint the backend calls in the official API schema
(pve-api-{8.4,9.1}), or, where the schema says the handler checks, from the upstream handler:
qemu-server (clone: `check_storage_access_clone`, `check_bridge_access`; config: `check_vm_modify_config_perm`),
pve-guest-common (`check_vnet_access`), pve-manager (`GET /nodes/{node}/network` lists a bridge only with SDN.Audit
or SDN.Use on `/sdn/zones/localnetwork/<bridge>`), pve-access-control (`check_perm_modify`, and `PUT /access/acl`
without Permissions.Modify may only hand out a propagated subset of the caller's own privileges on the path).
A guest's privileges come from its path `/vms/<id>` and, merged in, from its pool's ACL (RPCEnvironment), so the
site's VMs, which do not exist yet, are checked on `/pool/<pool>`.

`check` reads `GET /access/permissions?path=…` (the calling token's effective privileges: with privilege
separation the intersection of its own ACLs and its user's) for each path and refuses, before anything is
touched, naming every privilege missing and where. `RECIPE` is the `pveum` recipe of docs/proxmox.md; a unit test
holds the two equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from provisioner.backends.proxmox.client import PveClient, PveError
from provisioner.backends.proxmox.names import Names, nic_options
from provisioner.errors import InputError
from provisioner.site.model import ProxmoxSettings

DOCS = "docs/proxmox.md, section 'A least-privilege API token'"
READ, BUILD = "read", "build"  # read: plan's discovery and status; build: plan and apply


@dataclass(frozen=True)
class Need:
    """Privileges (any one of them) on a path; `path` may hold {template}, {pool}, {zone}, {bridge}, {realm}."""

    path: str
    privileges: tuple[str, ...]
    why: str  # the call that needs it, as the refusal names it
    phase: str = BUILD
    propagate: bool = False  # held for what lies below the path too (the ACL's propagate flag)
    versions: tuple[int, ...] = (8, 9)  # PVE major versions whose schema asks for it
    when: str = ""  # "people": only if the site has people; "dc_firewall": only with datacenter_firewall;
    # "disks": only if a size of backend.sizes sets disk_gb


def _n(path: str, privs: str, why: str, **kw: Any) -> Need:
    return Need(path, tuple(privs.split("|")), why, **kw)


NEEDS: tuple[Need, ...] = (
    # ---- read: preflight, discovery (plan, status)
    # GET /nodes/{node}/qemu/{vmid}/config: perm /vms/{vmid} VM.Audit
    _n("/vms/{template}", "VM.Audit", "read the template", phase=READ),
    # GET /nodes/{node}/network (pve-manager): a bridge is listed only with SDN.Audit or SDN.Use on it
    _n("/sdn/zones/localnetwork/{bridge}", "SDN.Audit|SDN.Use", "see the bridge", phase=READ),
    # GET /pools: lists only pools with Pool.Audit on /pool/<pool>
    _n("/pool/{pool}", "Pool.Audit", "see the pool", phase=READ),
    # GET /cluster/resources: lists only guests with VM.Audit on /vms/<id> (the site's VMs: through their pool)
    _n("/pool/{pool}", "VM.Audit", "see the pool's VMs", phase=READ),
    # GET /cluster/sdn/zones, /cluster/sdn/vnets: only entries with SDN.Audit or SDN.Allocate on them
    _n("/sdn/zones/{zone}", "SDN.Audit|SDN.Allocate", "see the zone and its VNets", phase=READ, propagate=True),
    # GET /access/groups, /access/users: only groups (and their users) with User.Modify or Sys.Audit on them
    _n(
        "/access/groups",
        "User.Modify|Sys.Audit",
        "see the site's groups and users",
        phase=READ,
        propagate=True,
        when="people",
    ),
    # GET /cluster/firewall/options, …/groups[/{group}], …/ipset[/{name}]: perm / Sys.Audit
    # (plan, status and NET-3 read whether the firewall is in force; VMs' firewall options and rules: VM.Audit)
    _n("/", "Sys.Audit", "read the datacenter firewall", phase=READ),
    # ---- build: the VLAN census (preflight_build)
    # GET /nodes/{node}/qemu, /nodes/{node}/lxc: only guests with VM.Audit; each guest's config: VM.Audit
    _n("/vms", "VM.Audit", "read every guest for the VLAN census", propagate=True),
    # GET /cluster/sdn/zones?pending=1, /cluster/sdn/vnets?pending=1: only entries with SDN.Audit or SDN.Allocate
    _n("/sdn/zones", "SDN.Audit|SDN.Allocate", "read every zone and VNet for the VLAN census", propagate=True),
    # ---- build: VMs
    # POST /nodes/{node}/qemu/{vmid}/clone: perm /vms/{vmid} VM.Clone (with `target`, onto another node of
    # backend.nodes, no other privilege: qemu-server checks only that the node exists and the storages are shared,
    # which the preflight reads from GET /storage, listed to holders of Datastore.Audit: PVEAuditor on /)
    _n("/vms/{template}", "VM.Clone", "clone the template"),
    # POST .../clone: VM.Allocate on /vms/{newid} or /pool/{pool}; DELETE /nodes/{node}/qemu/{vmid}: VM.Allocate
    _n("/pool/{pool}", "VM.Allocate", "create and remove its VMs"),
    # PUT .../config: check_vm_modify_config_perm: cores
    _n("/pool/{pool}", "VM.Config.CPU", "set the VMs' cores"),
    # PUT .../config: memory
    _n("/pool/{pool}", "VM.Config.Memory", "set the VMs' memory"),
    # PUT .../config: netN (and delete); PUT .../firewall/options, POST/DELETE .../firewall/rules
    _n("/pool/{pool}", "VM.Config.Network", "set the VMs' NICs and firewall"),
    # PUT .../config: agent, onboot, description, protection; tags (assert_tag_permissions)
    _n("/pool/{pool}", "VM.Config.Options", "set the VMs' options, tags and protection"),
    # PUT .../config: ciuser, sshkeys, nameserver; ipconfigN (VM.Config.Cloudinit or VM.Config.Network)
    _n("/pool/{pool}", "VM.Config.Cloudinit", "set the VMs' cloud-init"),
    # PUT .../resize (the boot disk to a size's disk_gb, backend.sizes): perm /vms/{vmid} VM.Config.Disk
    _n("/pool/{pool}", "VM.Config.Disk", "grow the VMs' disks to their size's disk_gb", when="disks"),
    # POST .../status/start, .../status/shutdown, .../status/stop: VM.PowerMgmt
    _n("/pool/{pool}", "VM.PowerMgmt", "start and shut down the VMs"),
    # POST .../agent/ping, GET .../agent/file-read: 8.x VM.Monitor
    _n("/pool/{pool}", "VM.Monitor", "read the VMs' host keys through the guest agent", versions=(8,)),
    # 9.x: POST .../agent/ping: VM.GuestAgent.Audit or VM.GuestAgent.Unrestricted
    _n("/pool/{pool}", "VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted", "ping the VMs' guest agent", versions=(9,)),
    # 9.x: GET .../agent/file-read: VM.GuestAgent.FileRead or VM.GuestAgent.Unrestricted
    _n("/pool/{pool}", "VM.GuestAgent.FileRead|VM.GuestAgent.Unrestricted", "read the VMs' host keys", versions=(9,)),
    # ---- build: pools and their ACLs
    # POST /pools, DELETE /pools: perm /pool/{poolid} Pool.Allocate
    _n("/pool/{pool}", "Pool.Allocate", "create and remove the pool"),
    # PUT /access/acl: perm-modify; without Permissions.Modify the handler lets one grant only a propagated subset
    # of one's own privileges (PVEAuditor: every audit privilege); GET /access/acl lists only such paths
    _n("/pool/{pool}", "Permissions.Modify", "grant the people's ACLs on the pool", when="people"),
    # ---- build: SDN
    # POST /cluster/sdn/zones: perm /sdn/zones SDN.Allocate
    _n("/sdn/zones", "SDN.Allocate", "create the site's zone"),
    # POST /cluster/sdn/vnets: perm /sdn/zones/{zone}; PUT/DELETE vnets, subnets (handler): /sdn/zones/<zone>/<vnet>
    _n("/sdn/zones/{zone}", "SDN.Allocate", "create the VNets and subnets", propagate=True),
    # PUT .../config netN=bridge=<vnet>: check_vnet_access, SDN.Use on /sdn/zones/<zone>/<vnet>
    _n("/sdn/zones/{zone}", "SDN.Use", "put the VMs' NICs on the VNets", propagate=True),
    # PUT /access/acl on /sdn/zones/<zone>/<vnet>: check_perm_modify asks Permissions.Modify there
    _n(
        "/sdn/zones/{zone}", "Permissions.Modify", "grant the people's ACLs on the VNets", propagate=True, when="people"
    ),
    # PUT /cluster/sdn: perm /sdn SDN.Allocate
    _n("/sdn", "SDN.Allocate", "apply the SDN configuration"),
    # GET /nodes/{node}/sdn/zones: lists only zones with SDN.Audit; GET .../zones/{zone}/content: perm SDN.Audit
    _n("/sdn/zones/{zone}", "SDN.Audit", "confirm that each node brought the VNets up", propagate=True),
    # ---- build: security groups, datacenter firewall
    # POST /cluster/firewall/groups, POST/DELETE /cluster/firewall/groups/{group}[/{pos}]: perm / Sys.Modify;
    # POST /cluster/firewall/ipset[/{name}] (the controller into `management`), PUT /cluster/firewall/options: the same
    _n("/", "Sys.Modify", "write the security groups and switch the datacenter firewall on"),
    # GET /cluster/firewall/groups/{group}: perm / Sys.Audit
    _n("/", "Sys.Audit", "read the security groups' rules"),
    # ---- build: the people's groups and users
    # POST /access/groups, DELETE /access/groups/{groupid}: perm /access/groups Group.Allocate
    _n("/access/groups", "Group.Allocate", "create the site's groups", when="people"),
    # POST /access/users with groups, PUT /access/users/{userid} groups: User.Modify on each group
    _n("/access/groups", "User.Modify", "set the people's groups", propagate=True, when="people"),
    # POST /access/users, DELETE /access/users/{userid}: userid-param Realm.AllocateUser on /access/realm/<realm>
    _n("/access/realm/{realm}", "Realm.AllocateUser", "create and remove the people's users", when="people"),
)
# Found in the template's config at preflight (qemu-server clone_vm):
# check_storage_access_clone: Datastore.AllocateSpace on each disk's storage (the target storage of a full clone)
STORAGE_NEED = _n("/storage/{storage}", "Datastore.AllocateSpace", "clone the template's disks")
# check_bridge_access: SDN.Use on /sdn/zones/<zone>/<bridge>[/<tag>] of each NIC (zone localnetwork: a plain bridge)
BRIDGE_NEED = _n("{nic_path}", "SDN.Use", "clone the template's NICs")


# ---- the recipe (docs/proxmox.md shows it with shell variables: {site} is $SITE, and so on) -------------------------
ROLE = "Provisioner"
USER = "provisioner@pve"
TOKEN = "apply"
_AGENT = {8: ("VM.Monitor",), 9: ("VM.GuestAgent.Audit", "VM.GuestAgent.FileRead")}
_ROLE_COMMON = (
    "Group.Allocate",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.Audit",
    "Sys.Modify",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.PowerMgmt",
)


def role_privileges(major: int) -> tuple[str, ...]:
    """The privileges of the Provisioner role on a PVE major version (8: VM.Monitor; 9: VM.GuestAgent.*)."""
    return tuple(sorted(_ROLE_COMMON + _AGENT[9 if major >= 9 else 8]))


@dataclass(frozen=True)
class Grant:
    path: str  # {site} {env} {zone} {template} {storage} {bridge} {realm}; {env}: one ACL per environment
    role: str
    propagate: bool


RECIPE: tuple[Grant, ...] = (
    Grant("/", "PVEAuditor", True),  # read the whole cluster: the VLAN census sees every guest, zone and VNet
    Grant("/", ROLE, False),  # security groups, datacenter firewall: Sys.Modify and Sys.Audit on / itself
    Grant("/vms/{template}", "PVETemplateUser", False),  # clone the template (VM.Clone), and only that
    Grant("/storage/{storage}", "PVEDatastoreUser", False),  # the clones' disks on the template's storage
    Grant("/sdn", ROLE, False),  # apply the SDN configuration
    Grant("/sdn/zones", ROLE, False),  # create the site's zone
    Grant("/sdn/zones", "PVEAuditor", True),  # an ACL on a path replaces its parents': keep reading every zone
    Grant("/sdn/zones/{zone}", ROLE, True),  # the site's VNets, subnets, NICs and the people's ACLs on them
    Grant("/sdn/zones/localnetwork/{bridge}", "PVESDNUser", False),  # the template's NIC is on the bridge
    Grant("/pool/{site}-infra", ROLE, True),  # the gateway
    Grant("/pool/{site}-{env}", ROLE, True),  # each environment's VMs and the people's ACLs on them
    Grant("/access/groups", ROLE, True),  # the site's groups and its people's memberships
    Grant("/access/realm/{realm}", ROLE, False),  # the people's users
)


# ---- the check ------------------------------------------------------------------------------------------------------
def _major(client: PveClient) -> int:
    version = str((client.get("version") or {}).get("version", "9"))
    match = re.match(r"(\d+)", version)
    return int(match.group(1)) if match else 9


def _applies(need: Need, phase: str, major: int, people: bool, dc_firewall: bool, disks: bool = False) -> bool:
    if phase == READ and need.phase != READ:
        return False
    if (9 if major >= 9 else 8) not in need.versions:
        return False
    if need.when == "disks" and not disks:
        return False
    return not ((need.when == "people" and not people) or (need.when == "dc_firewall" and not dc_firewall))


def _paths(need: Need, values: dict[str, list[str]]) -> list[str]:
    paths = [need.path]
    for key, options in values.items():
        if "{" + key + "}" in need.path:
            paths = [p.replace("{" + key + "}", option) for p in paths for option in options]
    return paths


class PermissionReader:
    """The token's own privileges per path, one `GET /access/permissions?path=` each."""

    def __init__(self, client: PveClient):
        self.client = client
        self._cache: dict[str, dict[str, Any]] = {}

    @cached_property
    def major(self) -> int:
        """The PVE major version (the privileges of the guest agent differ)."""
        return _major(self.client)

    def held(self, path: str) -> dict[str, Any]:
        if path not in self._cache:
            answer = self.client.get("access/permissions", path=path) or {}
            self._cache[path] = answer.get(path) or {}
        return self._cache[path]

    def missing(self, need: Need, path: str) -> str | None:
        held = self.held(path)
        ok = [p for p in need.privileges if p in held and (not need.propagate or int(held[p] or 0) == 1)]
        if ok:
            return None
        privs = " or ".join(need.privileges)
        below = " (propagated)" if need.propagate else ""
        return f"{privs} on {path}{below} ({need.why})"


def template_paths(
    client: PveClient, settings: ProxmoxSettings, config: dict[str, Any] | None = None
) -> tuple[list[str], list[str]]:
    """The storages and NIC paths (`/sdn/zones/<zone>/<bridge>[/<tag>]`) a clone of the template touches; `config`:
    the template's, when the preflight has read it already."""
    if config is None:
        config = client.get(f"nodes/{settings.node}/qemu/{settings.template}/config") or {}
    storages: set[str] = set()
    nic_paths: set[str] = set()
    vnet_zones: dict[str, str] | None = None
    for key, value in config.items():
        text = str(value)
        if re.fullmatch(r"(ide|sata|scsi|virtio)\d+|efidisk0|tpmstate0", key):
            volume = text.split(",", 1)[0]
            if "media=cdrom" in text or ":" not in volume:
                continue  # a CD-ROM (cloud-init drive, ISO) is not checked; `none` is no volume
            storages.add(settings.storage if settings.full_clone and settings.storage else volume.split(":", 1)[0])
            if settings.full_clone:  # the full clones of a size with a storage of its own go there
                storages.update(s.storage for s in settings.sizes.values() if s.storage)
        elif re.fullmatch(r"net\d+", key):
            parts = nic_options(text)
            bridge = parts.get("bridge")
            if not bridge:
                continue
            if vnet_zones is None:
                vnet_zones = {str(v.get("vnet")): str(v.get("zone")) for v in client.get("cluster/sdn/vnets") or []}
            path = f"/sdn/zones/{vnet_zones.get(bridge, 'localnetwork')}/{bridge}"
            tags = [parts["tag"]] if parts.get("tag") else []
            tags += [t for t in parts.get("trunks", "").split(";") if t]
            nic_paths.update([f"{path}/{tag}" for tag in tags] or [path])
    return sorted(storages), sorted(nic_paths)


def check(
    client: PveClient,
    settings: ProxmoxSettings,
    names: Names,
    where: str,
    phase: str,
    template: dict[str, Any] | None = None,
    reader: PermissionReader | None = None,
) -> None:
    """Raise InputError naming every privilege the token lacks for `phase` (READ or BUILD), and where; `template`:
    the template's config, when already read; `reader`: the token's privileges read so far (each path once)."""
    reader = reader or PermissionReader(client)
    major = reader.major
    site = names.site
    values = {
        "template": [str(settings.template)],
        "bridge": [settings.bridge],
        "pool": names.pools(),
        "zone": [names.zone],
        "realm": [settings.realm],
    }
    people = bool(site.people)
    disks = any(s.disk_gb is not None for s in settings.sizes.values())
    missing = [
        gap
        for need in NEEDS
        if _applies(need, phase, major, people, settings.datacenter_firewall, disks)
        for path in _paths(need, values)
        if (gap := reader.missing(need, path)) is not None
    ]
    if phase == BUILD and "VM.Audit" in reader.held(f"/vms/{settings.template}"):
        try:
            storages, nic_paths = template_paths(client, settings, template)
        except PveError:
            storages, nic_paths = [], []  # preflight names a template that cannot be read
        for storage in storages:
            missing += _gaps(reader, STORAGE_NEED, [f"/storage/{storage}"])
        missing += _gaps(reader, BRIDGE_NEED, nic_paths)
    if not missing:
        return
    token = settings.token.id
    nothing = all(not reader.held(path) for path in reader._cache)
    hint = (
        " It holds no privilege at all: a token with privilege separation holds only what ACLs of its own grant "
        "(and its user holds too)."
        if nothing
        else ""
    )
    raise InputError(
        f"{where}.token: the token {token} lacks {', '.join(_unique(missing))}.{hint} Grant them as {DOCS} shows "
        "(for the user and for the token), then run this again; nothing was changed"
    )


def _gaps(reader: PermissionReader, need: Need, paths: Iterable[str]) -> list[str]:
    return [gap for path in paths if (gap := reader.missing(need, path)) is not None]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
