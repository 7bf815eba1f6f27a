"""The planner every backend shares: from desired and actual state to creates, updates and deletes."""

from __future__ import annotations

import pytest
from helpers import EXAMPLE

from provisioner.backends.base import ActualMachine, ActualSegment, ActualState, destroy_changes, plan_changes
from provisioner.planning.desired import desired_state
from provisioner.planning.planner import Action, Kind
from provisioner.site.load import load_site


@pytest.fixture
def desired():
    return desired_state(load_site(EXAMPLE).model)


def converged(desired) -> ActualState:
    actual = ActualState()
    for seg in desired.segments:
        actual.segments[seg.key] = ActualSegment(seg.key, seg.environment, f"br-{seg.key}", seg.production)
    for spec in desired.machines:
        actual.machines[spec.name] = ActualMachine(
            spec.name, spec.kind, spec.environment, spec.name, spec.fingerprint(), True, True, spec.production
        )
    return actual


def actions(plan) -> dict[str, Action]:
    return {c.name: c.action for c in plan.changes}


def test_nothing_exists_everything_is_created(desired):
    plan = plan_changes(desired, ActualState())
    assert {c.action for c in plan.changes} == {Action.CREATE}
    assert len(plan.of(Kind.SEGMENT)) == 4 and len(plan.of(Kind.HOST)) == 6 and len(plan.of(Kind.GATEWAY)) == 1


def test_converged_plans_nothing(desired):
    assert plan_changes(desired, converged(desired)).empty


def test_half_built_machine_is_replaced(desired):
    actual = converged(desired)
    actual.machines["dev-app1"].complete = False
    assert actions(plan_changes(desired, actual)) == {"dev-app1": Action.REPLACE}


def test_stopped_machine_is_started_and_drift_is_repaired(desired):
    actual = converged(desired)
    actual.machines["test-db1"].running = False
    actual.machines["dev-db1"].drift = ["interface x is on pv-prod, expected pv-dev"]
    assert actions(plan_changes(desired, actual)) == {"test-db1": Action.START, "dev-db1": Action.UPDATE}


def test_changed_address_is_an_update_and_harms_production(desired):
    actual = converged(desired)
    actual.machines["prod-db1"].fingerprint = "old"
    plan = plan_changes(desired, actual)
    assert actions(plan) == {"prod-db1": Action.UPDATE}
    assert [c.name for c in plan.harming_production()] == ["prod-db1"]


def test_creating_in_production_does_not_need_confirmation(desired):
    plan = plan_changes(desired, ActualState())
    assert plan.harming_production() == []


def test_machines_no_longer_declared_are_deleted(desired):
    actual = converged(desired)
    actual.machines["old-box"] = ActualMachine("old-box", Kind.HOST, "prod", "x", "f", True, True, True)
    plan = plan_changes(desired, actual)
    assert actions(plan) == {"old-box": Action.DELETE}
    assert plan.harming_production()


def test_destroy_one_environment_touches_only_it(desired):
    plan = destroy_changes("example", converged(desired), ["dev"])
    assert {c.name for c in plan.changes} == {"dev-app1", "dev-db1", "dev"}
    assert not any(c.production for c in plan.changes)


def test_destroy_all_includes_production_and_the_gateway(desired):
    plan = destroy_changes("example", converged(desired), None)
    assert {c.name for c in plan.changes if c.production} == {"prod-app1", "prod-db1", "prod"}
    assert "gateway" in {c.name for c in plan.changes} and "mgmt" in {c.name for c in plan.changes}
