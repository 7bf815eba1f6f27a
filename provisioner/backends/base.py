"""The one interface every backend implements: discover, plan, apply, destroy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from provisioner.planning.desired import DesiredState, desired_state
from provisioner.planning.planner import Action, Change, Kind, Plan
from provisioner.site.load import LoadedSite
from provisioner.workspace.site_state import SiteState

Report = Callable[[str], None]


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
class ActualState:
    segments: dict[str, ActualSegment] = field(default_factory=dict)
    machines: dict[str, ActualMachine] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.segments and not self.machines


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

    @abstractmethod
    def discover(self) -> ActualState:
        """What exists now, found by the site's labels."""

    def plan(self) -> Plan:
        return plan_changes(self.desired, self.discover())

    def destroy_plan(self, environments: Iterable[str] | None = None) -> Plan:
        return destroy_changes(self.site.name, self.discover(), environments)

    @abstractmethod
    def apply(self, plan: Plan, report: Report) -> None:
        """Carry out the plan. Every step is idempotent, so an interrupted apply can simply be re-run."""

    def hypervisor_access(self) -> list[dict[str, object]] | None:
        """Per person and environment, the rights held at the hypervisor, read back live (ACC-6); None where the
        backend has no hypervisor accounts (the local LXC lab)."""
        return None

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
