"""The one interface every backend implements: discover, plan, apply, destroy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from provisioner.backends.network.probe_point import ProbePoint
from provisioner.errors import BackendError, ProvisionError
from provisioner.planning.desired import MGMT, DesiredState, MachineSpec, desired_state
from provisioner.planning.planner import Action, Change, Kind, Plan
from provisioner.site.load import LoadedSite
from provisioner.workspace.site_state import SiteState

Report = Callable[[str], None]
PARALLEL = 4  # hosts converged at once


@dataclass
class ActualSegment:
    key: str
    environment: str | None
    handle: str  # backend's own name for it (bridge, network, vnet)
    production: bool = False
    drift: list[str] = field(default_factory=list)


@dataclass
class ActualMachine:
    name: str
    kind: Kind
    environment: str | None
    handle: str  # container / domain / VM id
    fingerprint: str
    complete: bool  # False: left half-built by an interrupted apply
    running: bool
    production: bool = False
    drift: list[str] = field(default_factory=list)  # differences the backend can repair in place
    address: str | None = None


@dataclass
class Attachment:
    """Something live on one of the site's segments: a machine's interface or a bare switch port."""

    segment: str  # segment key (environment name or 'mgmt')
    machine: str  # machine name (its label) or the backend's handle for something unlabelled
    address: str | None
    managed: bool  # carries the site's labels
    interface: str = ""  # the port / veth on the segment


@dataclass
class Isolation:
    """What separates a machine from the hypervisor, read from the hypervisor's side (HYP-1)."""

    machine: str
    shares_kernel: bool  # a container runs on the hypervisor's own kernel; a virtual machine has its own
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each one a way the boundary is weaker than designed


@dataclass
class HypervisorFirewall:
    """The hypervisor's own firewall in front of the machines, read back from it: a second wall behind the
    gateway and each host's nftables (NET-3)."""

    enforced: bool  # switched on where everything below depends on it (Proxmox: the datacenter)
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the whole site
    machines: dict[str, list[str]] = field(default_factory=dict)  # host -> what leaves its NICs unfiltered

    def as_dict(self) -> dict[str, object]:
        return {"enforced": self.enforced, "facts": self.facts, "problems": self.problems, "machines": self.machines}


@dataclass
class ActualState:
    segments: dict[str, ActualSegment] = field(default_factory=dict)
    machines: dict[str, ActualMachine] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.segments and not self.machines


@dataclass
class ApplyWork:
    """What a plan asks of apply, sorted once for the skeleton and the backends' hooks."""

    plan: Plan
    specs: dict[str, MachineSpec]
    machines: list[Change]  # gateways and hosts, in plan order
    actual: ActualState = field(default_factory=ActualState)
    rebuilds: set[str] = field(default_factory=set)  # updates a backend carries out by building anew

    @classmethod
    def of(cls, plan: Plan, desired: DesiredState) -> ApplyWork:
        machines = [c for c in plan.changes if c.kind in (Kind.GATEWAY, Kind.HOST)]
        return cls(plan, {m.name: m for m in desired.machines}, machines)

    def found(self, actual: ActualState, rebuild_changed: bool) -> None:
        """What discovery found; with rebuild_changed, an update of a changed configuration is a rebuild."""
        self.actual = actual
        if rebuild_changed:
            self.rebuilds = {
                c.name
                for c in self.machines
                if c.action == Action.UPDATE
                and c.name in actual.machines
                and c.name in self.specs
                and actual.machines[c.name].fingerprint != self.specs[c.name].fingerprint()
            }

    @property
    def removals(self) -> list[Change]:
        """Machines that go, the old half of replacements and rebuilds: hosts before the gateway."""
        gone = [c for c in self.machines if c.action in (Action.DELETE, Action.REPLACE) or c.name in self.rebuilds]
        return sorted(gone, key=lambda c: c.kind == Kind.GATEWAY)

    @property
    def converge(self) -> list[Change]:
        return [c for c in self.machines if c.action != Action.DELETE]

    @property
    def gateways(self) -> list[Change]:
        return [c for c in self.converge if c.kind == Kind.GATEWAY]

    @property
    def hosts(self) -> list[Change]:
        return [c for c in self.converge if c.kind == Kind.HOST]

    @property
    def builds(self) -> bool:
        """Some machine is built from the base image."""
        return any(c.action in (Action.CREATE, Action.REPLACE) or c.name in self.rebuilds for c in self.converge)

    @property
    def segment_work(self) -> list[Change]:
        return self.plan.of(Kind.SEGMENT, Action.CREATE, Action.UPDATE)

    @property
    def segment_deletions(self) -> list[Change]:
        return self.plan.of(Kind.SEGMENT, Action.DELETE)

    @property
    def full_destroy(self) -> bool:
        """The management segment goes: the whole site does."""
        return any(c.name == MGMT for c in self.segment_deletions)

    def touched(self, *kinds: Kind) -> list[tuple[str, str]]:
        """(address, name) of the machines converged, of some kinds or all."""
        specs = [self.specs[c.name] for c in self.converge if c.name in self.specs]
        return [(str(s.address), s.name) for s in specs if not kinds or s.kind in kinds]


def plan_changes(desired: DesiredState, actual: ActualState) -> Plan:
    """Creates, updates, starts and deletes that turn `actual` into `desired`."""
    plan = Plan(desired.site)
    wanted_segments = {s.key: s for s in desired.segments}
    for seg in desired.segments:
        have_segment = actual.segments.get(seg.key)
        if have_segment is None:
            plan.changes.append(
                Change(Action.CREATE, Kind.SEGMENT, seg.key, seg.environment, str(seg.cidr), seg.production)
            )
        elif have_segment.drift:
            plan.changes.append(
                Change(
                    Action.UPDATE, Kind.SEGMENT, seg.key, seg.environment, "; ".join(have_segment.drift), seg.production
                )
            )
    wanted_machines = {m.name: m for m in desired.machines}
    for spec in desired.machines:
        have = actual.machines.get(spec.name)
        change = None
        if have is None:
            change = (Action.CREATE, f"{spec.address}")
        elif not have.complete:
            change = (Action.REPLACE, "left half-built by an interrupted apply")
        elif have.environment != spec.environment:
            change = (Action.REPLACE, f"moves from '{have.environment}' to '{spec.environment}'")
        elif have.fingerprint != spec.fingerprint():
            change = (Action.UPDATE, "configuration changed (address, size or template)")
        elif have.drift:
            change = (Action.UPDATE, "; ".join(have.drift))
        elif not have.running:
            change = (Action.START, "stopped")
        if change:
            production = spec.production or bool(have and have.production)
            plan.changes.append(Change(change[0], spec.kind, spec.name, spec.environment, change[1], production))
    for name, have in actual.machines.items():
        if name not in wanted_machines:
            plan.changes.append(
                Change(Action.DELETE, have.kind, name, have.environment, "no longer in the site file", have.production)
            )
    for key, have_seg in actual.segments.items():
        if key not in wanted_segments:
            plan.changes.append(
                Change(
                    Action.DELETE,
                    Kind.SEGMENT,
                    key,
                    have_seg.environment,
                    "no longer in the site file",
                    have_seg.production,
                )
            )
    return plan


def destroy_changes(site: str, actual: ActualState, environments: Iterable[str] | None) -> Plan:
    """Everything of the site (environments=None), or the hosts and segment of some environments."""
    plan = Plan(site)
    envs = set(environments) if environments is not None else None
    for name, have in actual.machines.items():
        if envs is None or (have.environment in envs):
            plan.changes.append(Change(Action.DELETE, have.kind, name, have.environment, "destroy", have.production))
    for key, seg in actual.segments.items():
        if envs is None or (seg.environment in envs):
            plan.changes.append(Change(Action.DELETE, Kind.SEGMENT, key, seg.environment, "destroy", seg.production))
    return plan


class Backend(ABC):
    """A hypervisor that can hold a site's segments and machines."""

    name: str = "abstract"
    nic_naming: str = "named"  # see desired.gateway_interface_names

    def __init__(self, site: LoadedSite, state: SiteState):
        self.site = site
        self.state = state
        self.desired: DesiredState = desired_state(site.model, self.nic_naming)

    @abstractmethod
    def preflight(self) -> None:
        """Raise ProvisionError if the backend cannot work on this machine (before anything is touched)."""

    def preflight_build(self) -> None:
        """Checks only building needs, run after `preflight` by `plan` and `apply` before anything is touched (not
        by destroy, status or verify: a site stays removable and readable whatever else the hypervisor holds)."""
        return None

    @abstractmethod
    def discover(self) -> ActualState:
        """What exists now, found by the site's labels."""

    # ---- plan ----------------------------------------------------------------------------------
    def plan(self) -> Plan:
        actual = self.discover()
        for spec in self.desired.machines:  # the backend's own fingerprint stands in for the generic one
            have = actual.machines.get(spec.name)
            if have is not None and have.fingerprint == self.machine_fingerprint(spec):
                have.fingerprint = spec.fingerprint()
        plan = plan_changes(self.desired, actual)
        plan.changes += self.extra_changes()
        plan.notes += self.plan_notes()
        return plan

    def plan_notes(self) -> list[str]:
        """What the plan should say beyond its changes, read from what discover found."""
        return []

    def machine_fingerprint(self, spec: MachineSpec) -> str:
        """What the backend records of a machine's configuration; by default the generic fingerprint."""
        return spec.fingerprint()

    def extra_changes(self) -> list[Change]:
        """Changes beyond segments and machines (hypervisor policy), read from what discover found."""
        return []

    def destroy_plan(self, environments: Iterable[str] | None = None) -> Plan:
        envs = list(environments) if environments is not None else None
        plan = destroy_changes(self.site.name, self.discover(), envs)
        plan.changes += self.extra_destroy_changes(envs)
        return plan

    def extra_destroy_changes(self, environments: list[str] | None) -> list[Change]:
        """What goes beyond segments and machines on a destroy (all of the site, or some environments)."""
        return []

    # ---- apply ---------------------------------------------------------------------------------
    # True: every host is converged and their errors are reported together; False: the first error stops apply
    joins_host_errors = False
    # True: a machine whose configuration changed is removed and built anew rather than reconfigured
    rebuilds_changed = False

    def apply(self, plan: Plan, report: Report) -> None:
        """Carry out the plan. Every step is idempotent, so an interrupted apply can simply be re-run."""
        work = ApplyWork.of(plan, self.desired)
        with self.apply_errors():
            self.prepare_apply(work, report)
            work.found(self.discover(), self.rebuilds_changed)
            # 1. machines that go, hosts before the gateway
            for change in work.removals:
                have = work.actual.machines.get(change.name)
                if have is not None:
                    self.remove_machine(change, have, work, report)
            # 2. segments and what the machines need before they start
            self.converge_segments(work, report)
            # 3. machines: the gateway first (hosts are reached through it), then hosts in parallel
            for change in work.gateways:
                self.converge_machine(change, work, report)
            self._converge_hosts(work, report)
            # 4. what goes after the machines
            self.remove_after_machines(work, report)
            # 5. the machines answer SSH, their host keys are pinned
            self.finish_apply(work, report)

    def _converge_hosts(self, work: ApplyWork, report: Report) -> None:
        if not work.hosts:
            return
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(self.converge_host, c, work, report) for c in work.hosts]
            for future in futures:
                try:
                    future.result()
                except ProvisionError as exc:
                    if not self.joins_host_errors:
                        raise
                    errors.append(str(exc))
        if errors:
            raise BackendError("; ".join(errors))

    @contextmanager
    def apply_errors(self) -> Iterator[None]:
        """Around apply: turns the hypervisor library's own errors into BackendError."""
        yield

    def prepare_apply(self, work: ApplyWork, report: Report) -> None:
        """Before discovery: what apply needs on this machine."""
        self.preflight()

    @abstractmethod
    def remove_machine(self, change: Change, have: ActualMachine, work: ApplyWork, report: Report) -> None:
        """Remove one machine found (a delete, the old half of a replacement, or a rebuild)."""

    @abstractmethod
    def converge_segments(self, work: ApplyWork, report: Report) -> None:
        """Segments and everything the machines need before they are built."""

    @abstractmethod
    def converge_machine(self, change: Change, work: ApplyWork, report: Report) -> None:
        """Create, update or start one machine."""

    def converge_host(self, change: Change, work: ApplyWork, report: Report) -> None:
        """A host, in a worker thread."""
        self.converge_machine(change, work, report)

    @abstractmethod
    def remove_segment(self, change: Change, have: ActualSegment, report: Report) -> None:
        """Remove one segment found."""

    def remove_gone_segments(self, work: ApplyWork, report: Report) -> None:
        for change in work.segment_deletions:
            have = work.actual.segments.get(change.name)
            if have is not None:
                self.remove_segment(change, have, report)

    def remove_after_machines(self, work: ApplyWork, report: Report) -> None:
        """By default the segments that go, and after a full destroy what the site kept outside them."""
        self.remove_gone_segments(work, report)
        if work.full_destroy:
            self.cleanup_site()

    @abstractmethod
    def finish_apply(self, work: ApplyWork, report: Report) -> None:
        """Last: wait until the machines answer SSH and write known_hosts."""

    def hypervisor_access(self) -> list[dict[str, object]] | None:
        """Per person and environment, the rights held at the hypervisor, read back live (ACC-6); None where the
        backend has no hypervisor accounts (the local LXC lab)."""
        return None

    def hypervisor_firewall(self) -> HypervisorFirewall | None:
        """The hypervisor's firewall in front of the site's hosts, read back live; None where the backend has
        none of its own (the LXC lab and libvirt: the gateway and each host's nftables are the walls)."""
        return None

    def probe_point(self, segment: str) -> ProbePoint | None:
        """The controller's own probe on an environment's segment or on an access network (verify's network
        attempts start there); None where the backend cannot attach the controller to its segments."""
        return None

    @contextmanager
    def machine_root(self, machine: str) -> Iterator[int | None]:
        """A directory descriptor of a running machine's root, opened from the hypervisor's side, for the block:
        the controller reads files through it with its own code (DATA-1's data folders), none of the machine's
        programs taking part. None where the backend has no such view (virtual machines: their disks are not
        the controller's to mount)."""
        yield None

    # HYP-1: whether this backend's machines run on the hypervisor's own kernel (containers) or their own (VMs),
    # and what the backend calls one of them
    shares_kernel = True
    machine_noun = "machine"

    def isolation(self, machines: list[str]) -> dict[str, Isolation]:
        """Per machine, what keeps its root away from the hypervisor, read from the hypervisor (HYP-1)."""
        actual = self.discover().machines
        found = {}
        for name in machines:
            have = actual.get(name)
            if have is None:
                found[name] = Isolation(name, self.shares_kernel, problems=[f"no {self.machine_noun} holds {name}"])
            else:
                found[name] = self.isolation_of(have)
        return found

    def isolation_of(self, have: ActualMachine) -> Isolation:
        """One machine's separation from the hypervisor, as the hypervisor shows it."""
        return Isolation(have.name, self.shares_kernel, problems=[f"the {self.name} backend cannot read it"])

    def attachments(self) -> list[Attachment]:
        """What is live on the site's segments (NET-4). By default the labelled machines at their addresses;
        backends that can read their switch ports also list what sits there without the site's labels."""
        env_of = {m.name: m.environment for m in self.desired.machines}
        found = []
        for machine in self.discover().machines.values():
            if machine.running:
                segment = machine.environment or env_of.get(machine.name) or "mgmt"
                found.append(Attachment(segment, machine.name, machine.address, True))
        return found

    @abstractmethod
    def cleanup_site(self) -> None:
        """After a full destroy: remove what the backend keeps for the site outside its resources."""
