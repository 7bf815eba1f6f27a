"""The library behind the CLI: plan, apply, status, destroy for one site."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from provisioner.ansible_run import fingerprints
from provisioner.ansible_run.inventory import build_inventory, inventory_path, write_inventory
from provisioner.ansible_run.progress import Progress
from provisioner.ansible_run.runner import RunResult, mitogen_strategy, new_run_dir, run_playbook, write_ansible_cfg
from provisioner.backends import backend_for
from provisioner.backends.base import Backend
from provisioner.engine import log_shipping
from provisioner.errors import InputError, RefusedError, shown
from provisioner.paths import inventories_dir
from provisioner.planning.planner import Action, Change, Plan
from provisioner.site.load import LoadedSite, load_site
from provisioner.workspace.secrets import ensure_site_secrets
from provisioner.workspace.site_state import SiteState

# what the command line shows of a plan and a run, so it needs nothing below the engine
__all__ = ["Action", "ApplyResult", "LoadedSite", "Plan", "Progress", "apply", "destroy", "load", "plan", "status"]


@dataclass
class ApplyResult:
    plan: Plan
    run: RunResult
    inventory: Path
    left_out: dict[str, str] = field(default_factory=dict)  # host → why the playbook did not run on it


def _require_prod_confirmation(site: LoadedSite, changes: list[Change], confirm_prod: str | None, verb: str) -> None:
    if not changes or confirm_prod == site.name:
        return
    listed = ", ".join(f"{c.action} {c.kind} {c.name}" for c in changes)
    hint = f"re-run with --confirm-prod {site.name} to confirm"
    if confirm_prod:
        hint = f"--confirm-prod names '{confirm_prod}', but this site is '{site.name}'"
    raise RefusedError(f"refusing to {verb} production ({listed}): {hint}. Nothing was changed.")


def plan(site: LoadedSite, backend: Backend | None = None) -> Plan:
    backend = backend or backend_for(site)
    backend.preflight()
    backend.preflight_build()
    return backend.plan()


def apply(site: LoadedSite, progress: Progress, confirm_prod: str | None = None, full: bool = False) -> ApplyResult:
    state = SiteState(site.name)
    backend = backend_for(site, state)
    backend.preflight()
    backend.preflight_build()
    with state.lock():
        the_plan = backend.plan()
        _require_prod_confirmation(site, the_plan.harming_production(), confirm_prod, "change")
        if the_plan.empty:
            progress.say("machines and segments match the site file")
        backend.apply(the_plan, progress.say)  # idempotent: also refreshes known host keys
        ensure_site_secrets(state, site.model)
        log_shipping.prepare(state, site.model, progress.say)
        cfg = write_ansible_cfg(state)
        inventory = write_inventory(site, cfg, state.secrets_dir, backend.nic_naming)
        progress.say(f"inventory written to {inventory}")
        extravars: dict[str, str] = {}  # the plays need none: the inventory names the secret folder
        machines = {str(c.name): f"{c.action} {c.kind} in this apply" for c in the_plan.changes}
        result, left_out = _run_site_playbook(site, backend, state, inventory, extravars, progress, full, machines)
        return ApplyResult(the_plan, result, inventory, left_out)


def _run_site_playbook(
    site: LoadedSite,
    backend: Backend,
    state: SiteState,
    inventory: Path,
    extravars: dict[str, str],
    progress: Progress,
    full: bool,
    forced: dict[str, str],
) -> tuple[RunResult, dict[str, str]]:
    """site.yml on the hosts that need it: a host whose inputs and live state are what they were after its last
    successful run is left out (see provisioner.ansible_run.fingerprints); the decision goes to the run's folder."""
    data = build_inventory(site, backend.nic_naming, state.secrets_dir)
    decision, inputs = fingerprints.choose_hosts(
        state, data, fingerprints.site_input(state, extravars), full=full, forced=forced
    )
    for host, why in sorted(decision.run.items()):
        progress.say(f"{host}: runs the playbook ({why})")
    if decision.skip:
        progress.say(
            f"left out, inputs and live state unchanged since their last successful run: {', '.join(decision.skip)}"
            " (--full runs every host)"
        )
    if not decision.run:
        run_dir = new_run_dir(state, "apply")
        fingerprints.write_decision(run_dir, decision)
        return RunResult(status="successful", rc=0, run_dir=run_dir), decision.skip
    fingerprints.forget(state, decision.run)  # recorded again only once this run has succeeded on them
    with progress:
        result = run_playbook(
            state,
            "site.yml",
            inventory,
            purpose="apply",
            on_event=progress.event,
            extravars=extravars,
            limit=decision.limit(),
            settings=mitogen_strategy(),
        )
    fingerprints.write_decision(result.run_dir, decision)
    failed = {f.host for f in result.failures} | {
        host for key in ("failures", "dark") for host, count in result.stats.get(key, {}).items() if count
    }
    if not result.ok:
        failed |= set(decision.run)
    unrecorded = fingerprints.remember(state, data, inputs, decision, result.run_dir, failed)
    for host, why in sorted(unrecorded.items()):
        progress.say(f"{host}: not recorded as converged ({why}); the next apply runs it")
    return result, decision.skip


def _check_environments(site: LoadedSite, environments: Iterable[str] | None) -> list[str] | None:
    """The --env names, each an environment of the site; None: all of them."""
    envs = list(environments) if environments else None
    known = [e.name for e in site.model.environments]
    for env in envs or []:
        if env not in known:
            raise InputError(f"--env {shown(env)}: unknown environment; allowed: {', '.join(known)}")
    return envs


def destroy(
    site: LoadedSite, progress: Progress, environments: Iterable[str] | None = None, confirm_prod: str | None = None
) -> Plan:
    envs = _check_environments(site, environments)
    state = SiteState(site.name)
    backend = backend_for(site, state)
    backend.preflight()
    with state.lock():
        the_plan = backend.destroy_plan(envs)
        prod_changes = [c for c in the_plan.changes if c.production]
        _require_prod_confirmation(site, prod_changes, confirm_prod, "destroy")
        if not the_plan.empty:
            fingerprints.forget(state, [c.name for c in the_plan.changes])
            backend.apply(the_plan, progress.say)
        if envs is None:
            fingerprints.forget(state)
            log_shipping.stop(state, site.model)
            backend.cleanup_site()
            inventory_path(site).unlink(missing_ok=True)
            state.forget_lab()
        return the_plan


class MachineStatus(TypedDict):
    name: str
    kind: str
    environment: str | None
    address: str
    state: str  # running, stopped, missing or half-built
    drift: list[str]


class SegmentStatus(TypedDict):
    segment: str
    cidr: str
    vlan: int | None
    present: bool


class SiteStatus(TypedDict):
    site: str
    backend: str
    segments: list[SegmentStatus]
    machines: list[MachineStatus]
    unmanaged: list[str]
    # the hypervisor's own firewall in front of the hosts, read back; None where the backend has none
    hypervisor_firewall: dict[str, object] | None


def status(site: LoadedSite) -> SiteStatus:
    backend = backend_for(site)
    backend.preflight()
    actual = backend.discover()
    desired = backend.desired
    rows: list[MachineStatus] = []
    for spec in desired.machines:
        have = actual.machines.get(spec.name)
        rows.append(
            {
                "name": spec.name,
                "kind": str(spec.kind),
                "environment": spec.environment,
                "address": str(spec.address),
                "state": "missing"
                if have is None
                else ("running" if have.running else "stopped")
                if have.complete
                else "half-built",
                "drift": have.drift if have else [],
            }
        )
    extra = [m.name for m in actual.machines.values() if m.name not in {s.name for s in desired.machines}]
    segments: list[SegmentStatus] = [
        {"segment": s.key, "cidr": str(s.cidr), "vlan": s.vlan, "present": s.key in actual.segments}
        for s in desired.segments
    ]
    firewall = backend.hypervisor_firewall()
    return {
        "site": site.name,
        "backend": backend.name,
        "segments": segments,
        "machines": rows,
        "unmanaged": extra,
        "hypervisor_firewall": firewall.as_dict() if firewall is not None else None,
    }


def load(site: str | None) -> LoadedSite:
    """The site file, checked: a site name under inventories/, a site directory or a site.yml path. None means
    $PROVISION_SITE or the only site; an empty name is a mistake (an unset variable), never "the default"."""
    if site is not None and not site.strip():
        known = sorted(p.parent.name for p in inventories_dir().glob("*/site.yml"))
        raise InputError(
            f"SITE {shown(site)}: empty; name a site under inventories/ ({', '.join(known) or 'none yet'}), "
            "a site directory or a site.yml path"
        )
    return load_site(site)
