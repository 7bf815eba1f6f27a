"""Which hosts `provision apply` leaves out of the playbook run: inputs changed → run; live state changed → run;
both unchanged → left out; --full → run. The live fingerprint script runs for real (on this machine, through the
same stdin interface ssh gives it), reading real files."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import EXAMPLE

from provisioner.ansible_run import fingerprints
from provisioner.ansible_run.fingerprints import HostRecord, decide
from provisioner.ansible_run.inventory import build_inventory
from provisioner.site.load import load_site
from provisioner.workspace.site_state import SiteState

LIVE = {"accounts": "a1", "nft ruleset": "0 n1", "file /etc/motd": "m1"}


def _record(input_: str = "in-1", live: dict[str, str] | None = None) -> HostRecord:
    return HostRecord(input=input_, live=dict(live or LIVE), paths=["/etc/motd"])


# ---- the decision --------------------------------------------------------------------------------------------------


def test_unchanged_inputs_and_live_state_leave_the_host_out():
    decision = decide(["web"], {"web": "in-1"}, {"web": _record()}, {"web": dict(LIVE)})
    assert decision.skip == {"web": "inputs and live state unchanged since its last successful run"}
    assert decision.run == {}
    assert decision.everything is False


def test_changed_inputs_run_the_host_whatever_its_live_state():
    decision = decide(["web"], {"web": "in-2"}, {"web": _record("in-1")}, {"web": dict(LIVE)})
    assert list(decision.run) == ["web"] and "inputs changed" in decision.run["web"]
    assert decision.skip == {}


@pytest.mark.parametrize(
    ("live", "named"),
    [
        ({**LIVE, "nft ruleset": "0 flushed"}, "nft ruleset"),
        ({**LIVE, "file /etc/motd": "absent"}, "file /etc/motd"),
        ({k: v for k, v in LIVE.items() if k != "accounts"}, "accounts"),  # a part gone
        ({**LIVE, "service nginx.service": "1 x 1 y"}, "service nginx.service"),  # a part new
    ],
)
def test_a_changed_live_state_runs_the_host_and_names_what_changed(live, named):
    decision = decide(["web"], {"web": "in-1"}, {"web": _record()}, {"web": live})
    assert decision.run == {"web": f"live state changed: {named}"}
    assert decision.skip == {}


def test_full_runs_every_host_even_an_unchanged_one():
    decision = decide(["web", "db"], {"web": "in-1", "db": "in-1"}, {"web": _record(), "db": _record()},
                      {"web": dict(LIVE), "db": dict(LIVE)}, full=True)  # fmt: skip
    assert decision.run == {"web": "--full", "db": "--full"} and decision.skip == {}
    assert decision.limit() is None


def test_no_record_an_unreadable_host_or_a_changed_machine_run_the_host():
    records = {"old": _record(), "dark": _record(), "rebuilt": _record()}
    decision = decide(
        ["new", "old", "dark", "rebuilt"],
        dict.fromkeys(["new", "old", "dark", "rebuilt"], "in-1"),
        records,
        {"old": dict(LIVE), "dark": "live state unreadable (exit 255)", "rebuilt": dict(LIVE)},
        forced={"rebuilt": "replace container in this apply"},
    )
    assert decision.run == {
        "new": "no record of a successful run",
        "dark": "live state unreadable (exit 255)",
        "rebuilt": "replace container in this apply",
    }
    assert list(decision.skip) == ["old"]
    assert decision.limit() == "dark,new,rebuilt"


# ---- the input fingerprint -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inventory() -> dict[str, Any]:
    return build_inventory(load_site(EXAMPLE))


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert set(before) == set(after)
    return {h for h in before if before[h] != after[h]}


def test_a_host_var_changes_that_hosts_input_only(inventory):
    before = fingerprints.input_fingerprints(inventory, "shared")
    edited = copy.deepcopy(inventory)
    edited["all"]["children"]["env_dev"]["hosts"]["dev-db1"]["host_services"] = ["something else"]
    assert _changed(before, fingerprints.input_fingerprints(edited, "shared")) == {"dev-db1"}


def test_a_group_var_changes_its_members_inputs(inventory):
    before = fingerprints.input_fingerprints(inventory, "shared")
    edited = copy.deepcopy(inventory)
    edited["all"]["children"]["env_prod"]["vars"]["env_description"] = "changed"
    members = set(inventory["all"]["children"]["env_prod"]["hosts"])
    assert members and _changed(before, fingerprints.input_fingerprints(edited, "shared")) == members


def test_a_group_membership_changes_the_hosts_input(inventory):
    before = fingerprints.input_fingerprints(inventory, "shared")
    edited = copy.deepcopy(inventory)
    edited["all"]["children"]["role_db"]["hosts"]["dev-app1"] = {}
    assert _changed(before, fingerprints.input_fingerprints(edited, "shared")) == {"dev-app1"}


def test_site_vars_and_the_shared_input_change_every_host(inventory):
    before = fingerprints.input_fingerprints(inventory, "shared")
    edited = copy.deepcopy(inventory)
    edited["all"]["vars"]["provisioner_people"] = ["someone"]
    assert _changed(before, fingerprints.input_fingerprints(edited, "shared")) == set(before)
    assert _changed(before, fingerprints.input_fingerprints(inventory, "other")) == set(before)
    assert "gateway" in before and "prod-db1" in before


def test_the_shared_input_covers_roles_and_settings(tmp_path):
    roles = tmp_path / "roles"
    (roles / "r" / "tasks").mkdir(parents=True)
    (roles / "r" / "tasks" / "main.yml").write_text("- name: a\n")
    first = fingerprints.shared_input([roles], {"x": 1})
    assert fingerprints.shared_input([roles], {"x": 1}) == first
    (roles / "r" / "tasks" / "main.yml").write_text("- name: b\n")
    second = fingerprints.shared_input([roles], {"x": 1})
    third = fingerprints.shared_input([roles], {"x": 2})
    assert len({first, second, third}) == 3
    # a role's Molecule scenario, byte code and tools' caches are not read by a run
    for scratch in ("r/molecule/default/converge.yml", "r/__pycache__/x.pyc", "r/.pytest_cache/v"):
        (roles / scratch).parent.mkdir(parents=True, exist_ok=True)
        (roles / scratch).write_text("x")
    assert fingerprints.shared_input([roles], {"x": 2}) == third


def test_a_secret_changes_the_inputs_of_the_hosts_whose_play_reads_it(inventory, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("db-app-dev", "db-app-prod", "log-ca.pem", "log-upload-prod-db1.key", "data-fingerprint-key"):
        (secrets / name).write_text("one")
    before = fingerprints.input_fingerprints(inventory, "shared", secrets)
    dev = set(inventory["all"]["children"]["env_dev"]["hosts"])
    prod = set(inventory["all"]["children"]["env_prod"]["hosts"])

    def rotated(name: str) -> set[str]:
        (secrets / name).write_text((secrets / name).read_text() + "x")
        return _changed(before, fingerprints.input_fingerprints(inventory, "shared", secrets))

    assert rotated("db-app-dev") == dev
    before = fingerprints.input_fingerprints(inventory, "shared", secrets)
    assert rotated("log-upload-prod-db1.key") == {"prod-db1"}
    before = fingerprints.input_fingerprints(inventory, "shared", secrets)
    assert rotated("data-fingerprint-key") == set(), "a secret only the controller uses changes no host's input"
    before = fingerprints.input_fingerprints(inventory, "shared", secrets)
    assert rotated("log-ca.pem") == set(before)
    before = fingerprints.input_fingerprints(inventory, "shared", secrets)
    (secrets / "db-carol-prod").write_text("new")  # a new secret of an environment: its hosts' inputs change
    assert _changed(before, fingerprints.input_fingerprints(inventory, "shared", secrets)) == prod


# ---- what a run managed, and the record ----------------------------------------------------------------------------


def _write_events(run_dir: Path, events: list[dict[str, Any]]) -> None:
    folder = run_dir / "artifacts" / "job" / "job_events"
    folder.mkdir(parents=True)
    for number, event in enumerate(events, 1):
        (folder / f"{number}-x.json").write_text(json.dumps(event))


def _event(host: str, action: str, res: dict[str, Any], kind: str = "runner_on_ok") -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task_action": action, "res": res}}


def test_the_managed_files_and_services_come_from_the_runs_events(tmp_path):
    _write_events(
        tmp_path,
        [
            _event("web", "ansible.builtin.template", {"dest": "/etc/motd", "changed": True}),
            _event("web", "ansible.builtin.file", {"path": "/etc/ssh/authorized_keys/"}, "runner_item_on_ok"),
            _event("web", "ansible.builtin.lineinfile", {"invocation": {"module_args": {"path": "/etc/sudoers"}}}),
            _event("web", "ansible.builtin.copy", {"dest": "/tmp/ansible-scratch"}),  # scratch: not state
            _event("web", "ansible.builtin.slurp", {"source": "/home/x/.ssh/authorized_keys"}),  # read, not managed
            _event("web", "ansible.builtin.systemd_service", {"invocation": {"module_args": {"name": "nginx"}}}),
            _event("db", "ansible.builtin.file", {"path": "/etc/x"}, "runner_on_failed"),  # failed: not managed
        ],
    )
    managed = fingerprints.managed_by_run(tmp_path)
    assert managed["web"] == ({"/etc/motd", "/etc/ssh/authorized_keys", "/etc/sudoers"}, {"nginx"})
    assert "db" not in managed


def test_records_round_trip_and_a_damaged_file_counts_as_none(tmp_path):
    state = SiteState("fp", root=tmp_path / "state")
    state.ensure()
    records = {"web": _record()}
    fingerprints.save_records(state, records)
    assert fingerprints.load_records(state) == records
    fingerprints.record_path(state).write_text("{not json")
    assert fingerprints.load_records(state) == {}
    fingerprints.record_path(state).write_text(json.dumps({"format": 99, "hosts": {}}))
    assert fingerprints.load_records(state) == {}


# ---- the live script and the whole cycle, for real on local files --------------------------------------------------


@pytest.fixture
def local_hosts(monkeypatch, tmp_path):
    """The live script runs here instead of over ssh, fed on stdin as ssh would; with no PATH, so the machine's own
    nft ruleset, services and packages (which the shared lab changes meanwhile) read as absent, steadily."""
    runner = "import os, sys; os.environ['PATH'] = '/nonexistent'; exec(sys.stdin.read())"
    monkeypatch.setattr(fingerprints, "ssh_command", lambda state, address: [sys.executable, "-c", runner])
    monkeypatch.setattr(fingerprints, "EPHEMERAL_ROOTS", ())  # tmp_path is under /tmp
    state = SiteState("fp", root=tmp_path / "state")
    state.ensure()
    return state


def _inventory() -> dict[str, Any]:
    return {"all": {"vars": {"site": "fp"}, "children": {"web": {"hosts": {"web1": {"ansible_host": "10.0.0.1"}}}}}}


def _converge(state: SiteState, run_dir: Path, managed: Path, full: bool = False) -> fingerprints.Decision:
    inventory = _inventory()
    decision, inputs = fingerprints.choose_hosts(state, inventory, "shared", full=full)
    if decision.run:
        _write_events(run_dir, [_event("web1", "ansible.builtin.copy", {"dest": str(managed)})])
        assert fingerprints.remember(state, inventory, inputs, decision, run_dir, failed_hosts=set()) == {}
    return decision


def test_the_live_script_sees_a_managed_file_change_and_nothing_else(local_hosts, tmp_path):
    managed = tmp_path / "motd"
    managed.write_text("welcome\n")
    assert _converge(local_hosts, tmp_path / "run1", managed).run == {"web1": "no record of a successful run"}
    assert _converge(local_hosts, tmp_path / "run2", managed).skip == {
        "web1": "inputs and live state unchanged since its last successful run"
    }
    managed.write_text("welcome\ndrift\n")
    assert _converge(local_hosts, tmp_path / "run3", managed).run == {"web1": f"live state changed: file {managed}"}
    # the run that repaired it recorded the state after it: the next apply leaves the host out again
    assert list(_converge(local_hosts, tmp_path / "run4", managed).skip) == ["web1"]
    managed.chmod(0o600)
    assert "file " in _converge(local_hosts, tmp_path / "run5", managed).run["web1"]
    managed.unlink()
    assert _converge(local_hosts, tmp_path / "run6", managed).run == {"web1": f"live state changed: file {managed}"}
    assert _converge(local_hosts, tmp_path / "run7", managed, full=True).run == {"web1": "--full"}


def test_a_failed_run_forgets_the_host_so_the_next_apply_runs_it(local_hosts, tmp_path):
    managed = tmp_path / "motd"
    managed.write_text("welcome\n")
    _converge(local_hosts, tmp_path / "run1", managed)
    assert list(fingerprints.load_records(local_hosts)) == ["web1"]
    decision = fingerprints.Decision(run={"web1": "--full"}, full=True)
    not_recorded = fingerprints.remember(local_hosts, _inventory(), {"web1": "x"}, decision, tmp_path, {"web1"})
    assert not_recorded == {"web1": "the run failed on it"}
    assert fingerprints.load_records(local_hosts) == {}
    assert _converge(local_hosts, tmp_path / "run2", managed).run == {"web1": "no record of a successful run"}


def test_an_unreachable_host_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(fingerprints, "ssh_command", lambda state, address: [sys.executable, "-c", "exit(255)"])
    state = SiteState("fp", root=tmp_path / "state")
    state.ensure()
    inventory = _inventory()
    inputs = fingerprints.input_fingerprints(inventory, "shared")
    fingerprints.save_records(state, {"web1": _record(inputs["web1"])})
    decision, _ = fingerprints.choose_hosts(state, inventory, "shared")
    assert decision.run == {"web1": "live state unreadable (exit 255)"}


# ---- Mitogen's strategy for provision's own run ---------------------------------------------------------------------


def test_provision_runs_site_yml_with_mitogens_strategy_unless_told_otherwise(monkeypatch):
    from provisioner.ansible_run.runner import mitogen_strategy

    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    settings = mitogen_strategy()
    assert settings["ANSIBLE_STRATEGY"] == "mitogen_free"
    assert (Path(settings["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_free.py").is_file()
    monkeypatch.setenv("ANSIBLE_STRATEGY", "linear")
    assert mitogen_strategy() == {}, "ANSIBLE_STRATEGY in the environment turns Mitogen off"


def test_forget_drops_every_host_it_is_given(tmp_path):
    """Before a run, every host about to run loses its record: an interrupted run must leave none of them
    recorded as converged (a lab test interrupts a --full apply and expects the re-run to run them all)."""
    state = SiteState("fp", root=tmp_path / "state")
    state.ensure()
    record = fingerprints.HostRecord(input="x", live={})
    fingerprints.save_records(state, {"a": record, "b": record, "c": record})
    fingerprints.forget(state, ["a", "b"])
    assert list(fingerprints.load_records(state)) == ["c"]
    fingerprints.forget(state)
    assert fingerprints.load_records(state) == {}
