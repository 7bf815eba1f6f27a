"""The Proxmox VE backend: SDN VNets per environment, VMs cloned from a template into a pool per environment,
security groups mirroring the gateway policy, and hypervisor access per people role.

`plan` reads the cluster with one list call per resource type (VMs, zones, VNets, pools, groups, users, ACLs,
security groups), whatever the number of VMs. `apply` converges what the plan lists; every step is idempotent,
so an interrupted apply is finished by running it again.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cached_property
from typing import Any

from provisioner.backends.base import (
    ActualMachine,
    ActualSegment,
    ActualState,
    ApplyWork,
    Backend,
    HypervisorFirewall,
    Isolation,
    Report,
)
from provisioner.backends.proxmox import access, enforcement, firewall, privileges
from provisioner.backends.proxmox.client import CallCounter, PveClient, PveError, token_secret
from provisioner.backends.proxmox.machines import VmidAllocator, VmLifecycle
from provisioner.backends.proxmox.names import READY_TAG, Names, parse_tags, tag_value
from provisioner.backends.proxmox.network import SdnWriter, vnet_design, vnet_drift
from provisioner.backends.proxmox.placement import place
from provisioner.backends.proxmox.policy import ACCESS, DC_FIREWALL, POOLS, PolicyWriter
from provisioner.backends.proxmox.storage import check_clone_storage, check_disk_sizes, check_other_nodes
from provisioner.backends.proxmox.vlan_census import refuse_shared_vlans
from provisioner.errors import InputError
from provisioner.planning.desired import MGMT, MachineSpec
from provisioner.planning.planner import Action, Change, Kind
from provisioner.remote.wait import require_ssh
from provisioner.site.load import LoadedSite
from provisioner.site.model import ProxmoxSettings
from provisioner.workspace.site_state import SiteState

SSH_WAIT_SECONDS = 180


class ProxmoxBackend(Backend):
    name = "proxmox"
    shares_kernel = False
    machine_noun = "Proxmox VM"
    nic_naming = "indexed"  # Proxmox's cloud-init names the NICs eth0, eth1... in netN order
    _main: VmLifecycle  # set by prepare_apply: the apply's own client
    _sdn: SdnWriter
    _placement: dict[str, str]  # machine -> node its new VM is built on (set by prepare_apply)

    def __init__(self, site: LoadedSite, state: SiteState):
        super().__init__(site, state)
        assert isinstance(site.model.backend, ProxmoxSettings)
        self.settings: ProxmoxSettings = site.model.backend
        self.names = Names(site.model)
        self.calls = CallCounter()
        self._client: PveClient | None = None
        self._cluster: dict[str, Any] = {}
        self._template: dict[str, Any] | None = None  # its config, as the preflight read it
        self._keys_lock = threading.Lock()
        self._allocator = VmidAllocator()
        # Ansible runs next, so apply waits until every machine it touched answers SSH. Only a benchmark of
        # the API path, against a fake whose VMs never boot, switches this off.
        self.wait_for_ssh = True
        # how long new API connections are tried after the datacenter firewall is switched on (enforcement.py)
        self.firewall_settle = enforcement.SETTLE_SECONDS

    # ---- connection ----------------------------------------------------------------------------
    @property
    def client(self) -> PveClient:
        if self._client is None:
            secret = token_secret(self.settings, self.site.directory)
            self._client = PveClient(self.settings, secret, self.calls)
        return self._client

    @cached_property
    def _permissions(self) -> privileges.PermissionReader:
        """The token's privileges, each path read once for both preflights."""
        return privileges.PermissionReader(self.client)

    def preflight(self) -> None:
        """Before anything is touched: the API answers, the token works, the node, template and bridge exist, and
        the template's disks can be cloned as the site file asks (linked or full, to which storage)."""
        where = f"{self.site.path}: backend"
        try:
            self.client.get("version")
        except PveError as exc:
            tried = ", ".join(self.settings.endpoints)
            raise InputError(f"{where}.host: cannot use the Proxmox API at {tried}: {exc}") from exc
        privileges.check(self.client, self.settings, self.names, where, privileges.READ, reader=self._permissions)
        listed = {str(n.get("node")): n for n in self.client.get("nodes") or []}
        nodes = set(listed)
        if self.settings.node not in nodes:
            raise InputError(
                f"{where}.node: node '{self.settings.node}' is not in the cluster; allowed: {', '.join(sorted(nodes))}"
            )
        for index, node in enumerate(self.settings.nodes or []):
            status = str(listed.get(node, {}).get("status", "")) if node in listed else None
            if status is None:
                raise InputError(
                    f"{where}.nodes[{index}]: node '{node}' is not in the cluster; allowed: {', '.join(sorted(nodes))}"
                )
            if status != "online":
                raise InputError(
                    f"{where}.nodes[{index}]: node '{node}' is {status or 'not online'}; every node VMs are placed on "
                    "must be online (bring it back, or take it out of backend.nodes and backend.placement)"
                )
        try:
            template = self.client.get(f"nodes/{self.settings.node}/qemu/{self.settings.template}/config")
        except PveError as exc:
            raise InputError(
                f"{where}.template: VM {self.settings.template} cannot be read on node {self.settings.node}: {exc}"
            ) from exc
        if not int(template.get("template", 0) or 0):
            raise InputError(
                f"{where}.template: VM {self.settings.template} ({template.get('name', 'no name')}) is not a "
                "template; convert it with `qm template` or name a template's VMID"
            )
        self._template = template
        check_clone_storage(self.client, self.settings, template, where)
        check_disk_sizes(self.settings, template, where)
        if any(node != self.settings.node for node in self.settings.vm_nodes):
            check_other_nodes(self.client, self.settings, template, where, self.client.get("storage") or [])
        for node in dict.fromkeys([self.settings.node, *self.settings.vm_nodes]):
            self._check_bridge(node, where)

    def _check_bridge(self, node: str, where: str) -> None:
        try:
            bridges = {
                str(n.get("iface"))
                for n in self.client.get(f"nodes/{node}/network") or []
                if n.get("type") in ("bridge", "OVSBridge")
            }
        except PveError as exc:
            if exc.status != 501:
                raise
            bridges = set()  # this API does not list the node's interfaces; the SDN zone check will tell
        if bridges and self.settings.bridge not in bridges:
            raise InputError(
                f"{where}.bridge: node {node} has no bridge '{self.settings.bridge}'; "
                f"allowed: {', '.join(sorted(bridges))}"
            )

    def preflight_build(self) -> None:
        """The VLAN census: a tag the site file wants that anything but the site's own zone uses on the bridge (a
        VNet of another zone, a tagged or trunked guest NIC, a node's VLAN interface, a QinQ service VLAN), or
        VLAN 1, is refused before anything is touched. It reads every guest's config, so it runs before plan and
        apply only; plan's own discovery stays one list call per resource type. The token's privileges first."""
        where = f"{self.site.path}: backend"
        privileges.check(
            self.client, self.settings, self.names, where, privileges.BUILD, self._template, self._permissions
        )
        refuse_shared_vlans(self.site.model, self.site.path, self.client, self.settings.bridge, self.names.zone)

    # ---- discovery -----------------------------------------------------------------------------
    def _read_cluster(self) -> dict[str, Any]:
        """One list call per resource type."""
        c = self.client
        cluster = {
            "vms": [r for r in c.get("cluster/resources", type="vm") or [] if r.get("type") == "qemu"],
            "zones": c.get("cluster/sdn/zones") or [],
            "vnets": c.get("cluster/sdn/vnets", pending=1) or [],
            "pools": c.get("pools") or [],
            "groups": c.get("access/groups") or [],
            "users": c.get("access/users") or [],
            "acls": c.get("access/acl") or [],
            "fw_groups": c.get("cluster/firewall/groups") or [],
        }
        cluster["fw_options"] = c.get("cluster/firewall/options") or {}
        self._cluster = cluster
        return cluster

    def _site_vms(self, cluster: dict[str, Any]) -> list[dict[str, Any]]:
        """The site's VMs: tagged with the site, or in one of its pools, or (a clone still running: Proxmox adds
        the pool only when the clone ends) named for one of its machines and locked by a clone. Complete ones
        first, so a duplicate left by an interrupted apply is the one planned for removal."""
        pools = set(self.names.pools())
        machines = {m.name for m in self.desired.machines}
        found = []
        for vm in cluster["vms"]:
            tags = parse_tags(vm.get("tags"))
            machine = self.names.machine_of(str(vm.get("name", "")))
            if machine is None:
                continue
            cloning = vm.get("lock") == "clone" and machine in machines
            if self.names.site_tag in tags or vm.get("pool") in pools or cloning:
                found.append(vm)
        return sorted(found, key=lambda vm: (READY_TAG not in parse_tags(vm.get("tags")), int(vm.get("vmid", 0))))

    def discover(self) -> ActualState:
        cluster = self._read_cluster()
        state = ActualState()
        vnets = {str(v.get("vnet")): v for v in cluster["vnets"]}
        for seg in self.desired.segments:
            design = vnet_design(self.names, seg)
            found = vnets.get(design.vnet)
            if found is not None and found.get("zone") == self.names.zone:
                state.segments[seg.key] = ActualSegment(
                    seg.key, seg.environment, design.vnet, seg.production, vnet_drift(design, found, self.names.zone)
                )
        wanted_vnets = {self.names.vnet(s.key) for s in self.desired.segments}
        for name, vnet in vnets.items():
            alias = str(vnet.get("alias") or "")
            if vnet.get("zone") == self.names.zone and name not in wanted_vnets:
                label = alias.split()[2] if alias.startswith(f"provisioner {self.site.name} ") else name
                key = f"{label}" if label != MGMT else MGMT
                state.segments[key] = ActualSegment(key, key if key != MGMT else None, name)
        for vm in self._site_vms(cluster):
            machine = self.names.machine_of(str(vm["name"])) or ""
            tags = parse_tags(vm.get("tags"))
            env = tag_value(tags, "env-")
            pool = vm.get("pool")
            if env is None and pool and pool != self.names.pool(None):
                env = str(pool).removeprefix(f"{self.site.name}-")
            kind = tag_value(tags, "kind-") or (Kind.GATEWAY if pool == self.names.pool(None) else Kind.HOST)
            drift = []
            if pool != self.names.pool(env if kind != Kind.GATEWAY else None):
                drift.append(f"in pool {pool or 'none'}, expected {self.names.pool(env)}")
            actual = ActualMachine(
                name=machine,
                kind=Kind(kind),
                environment=env if kind != Kind.GATEWAY else None,
                handle=f"{vm.get('node')}/{vm.get('vmid')}",
                fingerprint=tag_value(tags, "fp-") or "",
                complete=READY_TAG in tags and not vm.get("lock"),
                running=vm.get("status") == "running",
                production="tier-production" in tags or (pool is not None and pool == self._prod_pool(env)),
                drift=drift,
            )
            if machine in state.machines:  # a duplicate left by a lost clone answer: it goes
                machine = f"{machine}#{vm.get('vmid')}"
                actual.name = machine
            state.machines[machine] = actual
        return state

    def isolation_of(self, have: ActualMachine) -> Isolation:
        node, vmid = have.handle.split("/")
        facts, problems = vm_isolation(self.client.get(f"nodes/{node}/qemu/{vmid}/config") or {})
        return Isolation(have.name, False, [f"Proxmox QEMU VM {vmid} on {node}", *facts], problems)

    def _prod_pool(self, env: str | None) -> str | None:
        names = [e.name for e in self.site.model.environments if e.tier == "production"]
        return self.names.pool(env) if env in names else None

    # ---- plan ----------------------------------------------------------------------------------
    def machine_fingerprint(self, spec: MachineSpec) -> str:
        """The backend's own fingerprint: the spec and the template."""
        from provisioner.backends.proxmox.machines import fingerprint

        return fingerprint(spec, self.settings)

    def extra_changes(self) -> list[Change]:
        cluster = self._cluster
        changes: list[Change] = []
        pools = {str(p.get("poolid")) for p in cluster["pools"]}
        missing = [p for p in self.names.pools() if p not in pools]
        if missing:
            changes.append(Change(Action.CREATE, Kind.POLICY, POOLS, None, "resource pools " + ", ".join(missing)))
        problems = access.drift(
            self.site.model,
            self.names,
            cluster["groups"],
            cluster["users"],
            access.actual_acls(cluster["acls"], self.names),
        )
        if problems:
            # Adding what is missing harms nothing; changing or revoking what production runs with does.
            prod_paths = [f"/pool/{self.names.pool(e.name)}" for e in self._prod_envs()]
            harmful = [p for p in problems if "missing" not in p and any(path in p for path in prod_paths)]
            action = Action.UPDATE if len(problems) > len([p for p in problems if "missing" in p]) else Action.CREATE
            changes.append(Change(action, Kind.POLICY, ACCESS, None, "; ".join(problems[:4]), bool(harmful)))
        for env, problem in firewall.drift(self.site.model, self.names, cluster["fw_groups"]).items():
            production = self.site.model.environment(env).tier == "production"
            action = Action.CREATE if problem.endswith("missing") else Action.UPDATE
            changes.append(Change(action, Kind.POLICY, f"firewall-{env}", env, problem, production))
        if self.settings.datacenter_firewall and not self._datacenter_firewall_on():
            changes.append(Change(Action.UPDATE, Kind.POLICY, DC_FIREWALL, None, "switch the datacenter firewall on"))
        return changes

    def _datacenter_firewall_on(self) -> bool:
        return bool(int(self._cluster.get("fw_options", {}).get("enable", 0) or 0))

    def plan_notes(self) -> list[str]:
        notes = self._placement_notes()
        if not self.settings.datacenter_firewall and not self._datacenter_firewall_on():
            notes.append(enforcement.off_note())
        return notes

    def _placement_notes(self) -> list[str]:
        """Where the new VMs go, when there is more than one node to choose from."""
        if len(self.settings.vm_nodes) < 2:
            return []
        existing: dict[str, str] = {}
        for vm in self._site_vms(self._cluster):
            machine = self.names.machine_of(str(vm.get("name", "")))
            if machine is not None:
                existing.setdefault(machine, str(vm.get("node")))
        machines = [m.name for m in self.desired.machines]
        new = [name for name in machines if name not in existing]
        if not new:
            return []
        chosen = place(self.settings, machines, existing)
        return ["new VMs go to nodes: " + ", ".join(f"{name} on {chosen[name]}" for name in new)]

    def _prod_envs(self) -> list[Any]:
        return [e for e in self.site.model.environments if e.tier == "production"]

    def extra_destroy_changes(self, envs: list[str] | None) -> list[Change]:
        changes: list[Change] = []
        cluster = self._cluster
        fw_groups = {str(g.get("group")) for g in cluster["fw_groups"]}
        pools = {str(p.get("poolid")) for p in cluster["pools"]}
        for env in self.site.model.environments:
            if envs is not None and env.name not in envs:
                continue
            production = env.tier == "production"
            if self.names.security_group(env.name) in fw_groups:
                changes.append(
                    Change(Action.DELETE, Kind.POLICY, f"firewall-{env.name}", env.name, "destroy", production)
                )
            if self.names.pool(env.name) in pools:
                changes.append(Change(Action.DELETE, Kind.POLICY, f"pool-{env.name}", env.name, "destroy", production))
        if envs is None:
            if self.names.pool(None) in pools:
                changes.append(Change(Action.DELETE, Kind.POLICY, "pool-infra", None, "destroy"))
            if access.design(self.site.model, self.names).groups.keys() & {
                str(g.get("groupid")) for g in cluster["groups"]
            }:
                changes.append(Change(Action.DELETE, Kind.POLICY, ACCESS, None, "groups, users and ACLs of the site"))
        return changes

    # ---- apply ---------------------------------------------------------------------------------
    joins_host_errors = True  # every VM is tried; their errors are reported together

    def prepare_apply(self, work: ApplyWork, report: Report) -> None:
        self._allocator = VmidAllocator()
        existing = {name: have.handle.split("/")[0] for name, have in work.actual.machines.items() if "#" not in name}
        self._placement = place(self.settings, [m.name for m in self.desired.machines], existing)
        self._main = self._lifecycle(self.client)
        self._sdn = SdnWriter(self.client, self.names, self.settings.bridge)
        self._policy = PolicyWriter(self.client, self.site, self.names, self.firewall_settle)

    def remove_machine(self, change: Change, have: ActualMachine, work: ApplyWork, report: Report) -> None:
        node, vmid = have.handle.split("/")
        report(f"removing {change.kind} {change.name} (VM {vmid})")
        self._main.remove(node, int(vmid), report)
        self._forget_host_key(change.name)

    def converge_segments(self, work: ApplyWork, report: Report) -> None:
        """Networks, pools, access and security groups before any VM needs them; VNets that go (after their VMs);
        then SDN applied once."""
        sdn = self._sdn
        if work.segment_work:
            segments = [(str(c.action), self.desired.segment(c.name)) for c in work.segment_work]
            sdn.ensure_segments(segments, self._cluster["vnets"], report)
        self._policy.ensure(work.plan, report)
        self.remove_gone_segments(work, report)
        if work.full_destroy:
            sdn.remove_zone_if_empty()
        if sdn.changed or work.segment_work:
            report("applying the SDN configuration")
            gone = {have.handle for c in work.segment_deletions if (have := work.actual.segments.get(c.name))}
            kept = set() if work.full_destroy else {self.names.vnet(s.key) for s in self.desired.segments} - gone
            sdn.apply(kept, report)

    def remove_segment(self, change: Change, have: ActualSegment, report: Report) -> None:
        report(f"removing segment {change.name} (VNet {have.handle})")
        self._sdn.remove_vnet(have.handle)

    def converge_machine(self, change: Change, work: ApplyWork, report: Report) -> None:
        self._converge(change, work.specs[change.name], work.actual, self._main, report)

    def converge_host(self, change: Change, work: ApplyWork, report: Report) -> None:
        """In a worker thread, with a client of its own."""
        self._converge(change, work.specs[change.name], work.actual, self._lifecycle(self.client.fork()), report)

    def remove_after_machines(self, work: ApplyWork, report: Report) -> None:
        """What goes with the environments: security groups first, then pools and access."""
        self._policy.remove(work.plan, report)

    def finish_apply(self, work: ApplyWork, report: Report) -> None:
        """known_hosts from the pinned keys; only the gateway must answer SSH: it forwards to the hosts once the
        env_gateway role (the first play) has loaded the policy, and their guest agents already proved them up."""
        self._refresh_host_keys(self._main, report)
        if self.wait_for_ssh:
            self._wait_for_ssh(work.touched(Kind.GATEWAY), report)

    def _lifecycle(self, client: PveClient) -> VmLifecycle:
        key = self.state.controller_public_key()
        return VmLifecycle(client, self.names, self.settings, key, self._allocator)

    def _converge(
        self, change: Change, spec: MachineSpec, actual: ActualState, lifecycle: VmLifecycle, report: Report
    ) -> None:
        have = actual.machines.get(spec.name)
        say = report
        if change.action in (Action.CREATE, Action.REPLACE) or have is None:
            built = lifecycle.create(spec, say, self._placement.get(spec.name))
            self._remember_host_key(spec, built.vmid, built.host_key)
            return
        node, vmid = have.handle.split("/")
        if change.action == Action.UPDATE:
            built = lifecycle.update(node, int(vmid), spec, say)
            self._remember_host_key(spec, built.vmid, built.host_key)
        elif change.action == Action.START:
            say(f"starting {spec.name} (VM {vmid})")
            self._remember_host_key(spec, int(vmid), lifecycle.start(node, int(vmid), spec))

    # ---- host keys and SSH ---------------------------------------------------------------------
    @property
    def _host_keys_file(self) -> Any:
        return self.state.root / "proxmox-host-keys.json"

    def _host_keys(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self._host_keys_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_host_keys(self, keys: dict[str, dict[str, Any]]) -> None:
        self.state.ensure()
        tmp = self._host_keys_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(keys, indent=1, sort_keys=True))
        os.replace(tmp, self._host_keys_file)

    def _remember_host_key(self, spec: MachineSpec, vmid: int, key: str) -> None:
        with self._keys_lock:
            keys = self._host_keys()
            keys[spec.name] = {"vmid": vmid, "address": str(spec.address), "key": key}
            self._save_host_keys(keys)

    def _forget_host_key(self, name: str) -> None:
        with self._keys_lock:
            keys = self._host_keys()
            keys.pop(name, None)
            self._save_host_keys(keys)

    def _refresh_host_keys(self, lifecycle: VmLifecycle, report: Report) -> None:
        """known_hosts from the pinned keys of the site's ready VMs; a key missing here is read again."""
        actual = self.discover()
        keys = self._host_keys()
        entries = {}
        for spec in self.desired.machines:
            have = actual.machines.get(spec.name)
            if have is None or not have.complete or not have.running:
                continue
            node, vmid = have.handle.split("/")
            known = keys.get(spec.name)
            if known is None or known.get("vmid") != int(vmid) or known.get("address") != str(spec.address):
                report(f"reading the SSH host key of {spec.name} through the guest agent")
                self._remember_host_key(spec, int(vmid), lifecycle.read_host_key(node, int(vmid), spec.name))
                known = self._host_keys()[spec.name]
            entries[str(spec.address)] = known["key"]
        self.state.write_known_hosts(entries)

    def _wait_for_ssh(self, machines: list[tuple[str, str]], report: Report) -> None:
        mgmt = self.site.model.management
        hint = (
            f". The VMs run; the controller needs the address {mgmt.controller} on the management VLAN {mgmt.vlan} "
            f"and routes to the segments via {mgmt.gateway}"
        )
        require_ssh(machines, SSH_WAIT_SECONDS, report, hint)

    def cleanup_site(self) -> None:
        self._host_keys_file.unlink(missing_ok=True)

    # ---- read back for the conformance suite ---------------------------------------------------
    def hypervisor_firewall(self) -> HypervisorFirewall:
        """Whether Proxmox's firewall filters each of the site's hosts, read back: the datacenter switch, the
        security groups' rules, each VM's firewall options, rules and NICs."""
        cluster = self._read_cluster()
        hosts = {}
        for vm in self._site_vms(cluster):
            tags = parse_tags(vm.get("tags"))
            machine = self.names.machine_of(str(vm.get("name", "")))
            env = tag_value(tags, "env-")
            if machine and env and tag_value(tags, "kind-") != Kind.GATEWAY:
                hosts[machine] = (env, str(vm.get("node")), int(vm["vmid"]))
        return enforcement.read(self.client, self.site.model, self.names, hosts)

    def hypervisor_access(self) -> list[dict[str, Any]]:
        """Per person and environment: the Proxmox roles they effectively hold on the environment's pool, its
        VMs and its VNet, computed from the ACLs and group memberships read back from the cluster."""
        cluster = self._read_cluster()
        acl_list = cluster["acls"]
        memberships = {str(u.get("userid")): access.split_groups(u.get("groups")) for u in cluster["users"]}
        vms_by_pool: dict[str, list[int]] = {}
        for vm in self._site_vms(cluster):
            vms_by_pool.setdefault(str(vm.get("pool")), []).append(int(vm["vmid"]))
        rows = []
        for person in self.site.model.people:
            uid = access.userid(self.site.model, person.name)
            groups = memberships.get(uid, set())
            for env in self.site.model.environments:
                pool = self.names.pool(env.name)
                paths = [f"/pool/{pool}", f"/sdn/zones/{self.names.zone}/{self.names.vnet(env.name)}"]
                paths += [f"/vms/{vmid}" for vmid in sorted(vms_by_pool.get(pool, []))]
                held: dict[str, list[str]] = {}
                for path in paths:
                    for role, via in access.effective_roles(acl_list, uid, groups, path).items():
                        held.setdefault(role, []).append(f"{path} (ACL on {via})")
                rows.append(
                    {
                        "person": person.name,
                        "userid": uid,
                        "environment": env.name,
                        "tier": env.tier,
                        "roles": sorted(held),
                        "evidence": held,
                        "user_exists": uid in memberships,
                    }
                )
        return rows


# VM options that hand a guest something of the host's own (PCI or USB devices, host folders, raw QEMU arguments).
HOST_SHARING_OPTIONS = {
    "hostpci": "a host PCI device passed through",
    "usb": "a host USB device passed through",
    "virtiofs": "a host folder shared into the guest",
    "args": "raw QEMU arguments (anything is possible)",
}


def vm_isolation(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Facts and problems of a QEMU VM's separation from its node (HYP-1)."""
    facts = ["a QEMU virtual machine with its own kernel"]
    problems = []
    for key, value in sorted(config.items()):
        prefix = key.rstrip("0123456789")
        if prefix in HOST_SHARING_OPTIONS and not (prefix == "usb" and "spice" in str(value)):
            problems.append(f"{key}: {value}: {HOST_SHARING_OPTIONS[prefix]}")
    return facts, problems
