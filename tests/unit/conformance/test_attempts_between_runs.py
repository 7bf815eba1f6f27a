"""The attempts between two verify runs (issue 21, item 2): the gateway's deny counters from the previous run's end
to this run's start, its deny log lines, and the refused logins and sudo in the production journals as the
controller's receiver holds them (real journal files, written by systemd-journal-remote and read with journalctl).

The gateway and the clock are scripted (no lab here); each test drives whole verify runs through before_run and
after_run as run_verify does, with the suite's own probes made between the two."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from attempt_logs import entry as journal_entry
from attempt_logs import invalid_user, refused_key, sudo_not_in_sudoers, write_copy
from helpers import EXAMPLE, example_data, example_with_access_networks

from provisioner.conformance import attempts
from provisioner.conformance.attempts import ATTEMPTS_FILE, Snapshot, after_run, before_run, state_path
from provisioner.conformance.attempts.auth_log import fingerprint
from provisioner.conformance.attempts.sources import LiveSources, Unreadable, journal_files, known_host
from provisioner.conformance.history import read_history, record_run
from provisioner.site.load import LoadedSite
from provisioner.site.model import Site
from provisioner.workspace.redact import MASK
from provisioner.workspace.site_state import SiteState

T0 = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)
RUN_TIME = dt.timedelta(minutes=2)  # how long one verify run takes here
CONTROLLER, DEV_HOST, OFFICE_DESK = "10.90.0.1", "10.90.10.11", "10.90.50.7"
PROD_APP1, PROD_DB1 = "10.90.30.11", "10.90.30.21"


class Lab(LiveSources):
    """The gateway and the clock as a script; the production journals read for real from the controller's copies
    (LiveSources.host_journal: journalctl on remote-<address>.journal in the site's host-logs folder)."""

    def __init__(self, site: Site, state: SiteState):
        super().__init__(site, state)
        self.clock = T0
        self.counters: dict[str, int] = {"deny_dev_to_prod": 7, "deny_gateway_input": 1}
        self.counters_fail: str | None = None
        self.kernel: list[dict[str, Any]] = []
        self.journals: dict[str, list[dict[str, Any]]] = {}
        self.pid = 2000

    def now(self) -> dt.datetime:
        return self.clock

    def gateway_counters(self) -> dict[str, int]:
        if self.counters_fail:
            raise Unreadable(self.counters_fail)
        return dict(self.counters)

    def gateway_journal(self, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
        return list(self.kernel)

    # ---- what happens on the lab ----
    def later(self, seconds: float = 60) -> dt.datetime:
        self.clock += dt.timedelta(seconds=seconds)
        return self.clock

    def denied(self, pair: str, packets: int = 1) -> None:
        """Packets the gateway refuses between two zones: counted, and logged with the role's prefix."""
        source, destination = pair.split("->")
        name = f"deny_{source}_to_{destination}"
        self.counters[name] = self.counters.get(name, 0) + packets
        when = self.later(1)
        self.kernel.append({
            **journal_entry(when, 0, f"pv-deny {pair} IN=seg-{source} OUT=seg-{destination} SRC={DEV_HOST} "
                                     f"DST={PROD_APP1} LEN=60 PROTO=TCP SPT=41000 DPT=5432 SYN", program="kernel"),
            "_TRANSPORT": "kernel",
        })  # fmt: skip

    def logged(self, address: str, entries: list[dict[str, Any]]) -> None:
        """Entries of a production host, shipped to the controller's copy (appended, as the receiver does)."""
        self.journals.setdefault(address, []).extend(entries)
        write_copy(self.state.host_logs_dir, address, entries)

    def next_pid(self) -> int:
        self.pid += 1
        return self.pid

    def refused_login(self, person_key: str, user: str, source: str, address: str = PROD_APP1) -> None:
        self.logged(address, refused_key(self.later(1), self.next_pid(), user, source, person_key))

    def refused_sudo(self, user: str, address: str = PROD_APP1) -> None:
        self.logged(address, sudo_not_in_sudoers(self.later(1), self.next_pid(), user))


def verify(
    site: LoadedSite, state: SiteState, lab: Lab, probes: bool = True, name: str = "run"
) -> tuple[Snapshot, dict[str, Any]]:
    """One verify run as run_verify makes it: before_run, the suite (its probes: denied connections from dev to prod
    and a developer's refused login on production, made on purpose), after_run."""
    run_dir = state.runs_dir / f"{name}-{lab.clock:%H%M%S}"
    run_dir.mkdir(parents=True)
    lab.later(1.25)  # within a second: journalctl's bounds are whole seconds, the window's are not
    start = before_run(site, state, lab)
    if probes:
        lab.later(0.4)
        lab.logged(PROD_APP1, refused_key(lab.clock, lab.next_pid(), "alice", CONTROLLER, key(site, "alice")))
        lab.denied("dev->prod", 12)
        lab.later(RUN_TIME.total_seconds())
        lab.refused_login(key(site, "alice"), "alice", CONTROLLER)
    lab.later(0.3)
    found = after_run(site, state, run_dir, start, lab)
    assert json.loads((run_dir / ATTEMPTS_FILE).read_text()) == found
    lab.later(1)
    return start, found


def key(site: LoadedSite, person: str) -> str:
    return fingerprint(next(p.ssh_key for p in site.model.people if p.name == person))


@pytest.fixture
def world(tmp_path: Path) -> tuple[LoadedSite, SiteState, Lab]:
    site = LoadedSite(Site.model_validate(example_with_access_networks()), EXAMPLE)
    state = SiteState("example", tmp_path / "state")
    state.ensure()
    lab = Lab(site.model, state)
    for address in (PROD_APP1, PROD_DB1):  # the receiver has copies of both production hosts' journals
        lab.logged(address, [journal_entry(T0, 1, "Server listening on 0.0.0.0 port 22.")])
    return site, state, lab


# ---- no window, nothing counted ------------------------------------------------------------------------------
def test_the_first_run_says_no_earlier_run_and_counts_nothing(world):
    site, state, lab = world
    lab.denied("dev->prod", 5)
    lab.refused_login(key(site, "bob"), "bob", DEV_HOST)  # before any run: no window holds it
    _start, found = verify(site, state, lab)
    assert found["since"] is None and found["window"] == attempts.NO_EARLIER_RUN
    assert found["gateway"] == {"read": False, "why": attempts.NO_EARLIER_RUN, "by_pair": {}}
    assert found["logs"] == {"read": False, "why": attempts.NO_EARLIER_RUN}
    assert found["refused"] == [] and found["by_person"] == {}
    kept = json.loads(state_path(state).read_text())
    assert kept["end"]["counters"] == lab.counters and kept["end"]["why"] == "", "the next run counts from here"
    assert kept["end"]["time"] > found["until"] and "running" not in kept


def test_the_suite_s_own_probes_are_never_counted(world):
    """Run 1 and run 2 each make denied connections and a refused login on purpose; nothing happens between them:
    run 2 counts nothing, though the counters and the journal grew during both runs."""
    site, state, lab = world
    verify(site, state, lab)
    start, found = verify(site, state, lab)
    assert found["gateway"]["read"] is True and found["gateway"]["by_pair"] == {}
    assert found["gateway"]["log"]["lines"] == [] and found["gateway"]["log"]["read"] is True
    assert found["logs"]["read"] is True, found["logs"]
    assert found["refused"] == [] and found["by_person"] == {} and found["refused_total"] == 0
    assert lab.counters["deny_dev_to_prod"] == 7 + 24, "the probes did move the counter"
    assert len(lab.journals[PROD_APP1]) == 13, "and the refused logins of the probes are in the journal copy"
    assert found["until"] == start.time.isoformat(timespec="microseconds")


def test_attempts_between_runs_are_counted_by_pair_and_by_person(world):
    site, state, lab = world
    verify(site, state, lab)
    lab.denied("dev->prod", 3)
    lab.denied("office->prod", 1)
    lab.refused_login(key(site, "alice"), "alice", DEV_HOST)
    lab.logged(PROD_DB1, invalid_user(lab.later(1), lab.next_pid(), "root", OFFICE_DESK, key(site, "bob")))
    lab.refused_sudo("carol", PROD_DB1)
    _start, found = verify(site, state, lab)
    assert found["gateway"]["read"] is True
    assert found["gateway"]["by_pair"] == {"dev->prod": 3, "office->prod": 1}
    assert [line.split(" ", 2)[2].split(" IN=")[0] for line in found["gateway"]["log"]["lines"]] == [
        "dev->prod", "office->prod",
    ], "only the deny lines of the window, not those of the probes"  # fmt: skip
    assert found["by_person"] == {"alice": {"ssh": 1, "sudo": 0}, "bob": {"ssh": 1, "sudo": 0},
                                  "carol": {"ssh": 0, "sudo": 1}}  # fmt: skip
    assert [(r["host"], r["what"], r["user"], r["person"], r["from_env"]) for r in found["refused"]] == [
        ("prod-app1", "ssh", "alice", "alice", "dev"),
        ("prod-db1", "ssh", "root", "bob", "office"),
        ("prod-db1", "sudo", "carol", "carol", None),
    ]
    assert found["logs"] == {"read": True, "why": "shipped journals of prod-app1, prod-db1"}
    since, until = (dt.datetime.fromisoformat(found[k]) for k in ("since", "until"))
    assert all(since <= dt.datetime.fromisoformat(r["time"]) < until for r in found["refused"])


def test_the_next_run_does_not_count_them_again(world):
    site, state, lab = world
    verify(site, state, lab)
    lab.denied("dev->prod", 3)
    lab.refused_login(key(site, "alice"), "alice", DEV_HOST)
    _start, second = verify(site, state, lab)
    _start, third = verify(site, state, lab)
    assert second["gateway"]["by_pair"] == {"dev->prod": 3} and second["refused_total"] == 1
    assert third["gateway"]["by_pair"] == {} and third["refused_total"] == 0
    assert third["since"] > second["until"]


# ---- the journals arrive late: read by arrival (the journal's cursor), not by time -------------------------
def test_a_refusal_that_arrives_after_its_window_was_read_is_counted_by_the_next_run_once(world):
    """A refusal made between run 1 and run 2 whose lines reach the controller only after run 2 has read the
    journals (shipping lags): run 3 counts it, marked late; run 4 does not count it again. Read by time, it would
    fall into no run's window."""
    site, state, lab = world
    verify(site, state, lab)
    made = refused_key(lab.later(5), lab.next_pid(), "alice", DEV_HOST, key(site, "alice"))  # not shipped yet
    _start, second = verify(site, state, lab)
    assert second["refused_total"] == 0 and "late" not in second["logs"]
    lab.logged(PROD_APP1, made)  # it arrives now
    _start, third = verify(site, state, lab)
    assert [(r["user"], r["person"], r["from_env"]) for r in third["refused"]] == [("alice", "alice", "dev")]
    assert third["refused"][0]["time"] < second["until"], "stamped in the window before"
    assert third["logs"]["late"] == 1 and "arrived after it had read them: counted here" in third["logs"]["why"]
    _start, fourth = verify(site, state, lab)
    assert fourth["refused_total"] == 0 and "late" not in fourth["logs"]


def test_a_probe_of_a_run_that_arrives_late_is_still_a_probe(world):
    """The suite's own refused login during run 2 reaches the controller after run 2 has read the journals: it lies
    inside run 2's window (kept), so run 3 does not count it."""
    site, state, lab = world
    verify(site, state, lab)
    start, _second = verify(site, state, lab, probes=False)
    probe = refused_key(start.time + dt.timedelta(seconds=0.2), lab.next_pid(), "alice", CONTROLLER, key(site, "alice"))
    lab.logged(PROD_APP1, probe)
    _start, third = verify(site, state, lab)
    assert third["refused_total"] == 0 and third["by_person"] == {}
    kept = json.loads(state_path(state).read_text())
    assert len(kept["runs"]) == 3 and kept["runs"][1][0] == start.time.isoformat(timespec="microseconds")


def test_an_entry_stamped_after_a_run_s_end_is_left_to_the_next_run(world):
    """An entry already in the copy but stamped after this run's end (a host whose clock is ahead, or an attempt
    while the run reads) is the next run's: it stops this run's read there, and what arrived after it waits too."""
    site, state, lab = world
    verify(site, state, lab)
    ahead = lab.clock + dt.timedelta(seconds=3.5)  # after run 2's end, before run 3's start (runs without probes)
    lab.logged(PROD_APP1, refused_key(ahead, lab.next_pid(), "bob", DEV_HOST, key(site, "bob")))
    lab.refused_sudo("carol", PROD_APP1)  # arrives after the one ahead, stamped now: before run 2
    _start, second = verify(site, state, lab, probes=False)
    end = dt.datetime.fromisoformat(json.loads(state_path(state).read_text())["end"]["time"])
    assert end < ahead < lab.clock + dt.timedelta(seconds=1.25), "stamped after run 2's end, before run 3's start"
    assert second["by_person"] == {}, "both wait: carol's line arrived after bob's, which is run 3's"
    _start, third = verify(site, state, lab, probes=False)
    assert third["by_person"] == {"bob": {"ssh": 1, "sudo": 0}, "carol": {"ssh": 0, "sudo": 1}}
    assert third["logs"]["late"] == 1, "carol's sudo was stamped before run 2's end"
    _start, fourth = verify(site, state, lab)
    assert fourth["refused_total"] == 0


def test_the_position_in_each_journal_is_its_cursor(world):
    site, state, lab = world
    verify(site, state, lab)
    lab.refused_sudo("carol", PROD_DB1)
    verify(site, state, lab)
    kept = json.loads(state_path(state).read_text())
    assert set(kept["journals"]) == {"prod-app1", "prod-db1"}
    assert all(p["cursor"].startswith("s=") for p in kept["journals"].values()), kept["journals"]
    kept["journals"]["prod-db1"] = {"cursor": "not-a-cursor"}
    state_path(state).write_text(json.dumps(kept))
    lab.refused_sudo("dave", PROD_APP1)
    _start, found = verify(site, state, lab)
    assert found["logs"]["read"] is False and "prod-db1" in found["logs"]["why"], found["logs"]
    assert found["by_person"] == {"dave": {"ssh": 0, "sudo": 1}}, "the other host still counts"
    kept = json.loads(state_path(state).read_text())
    assert "time" in kept["journals"]["prod-db1"], "a cursor that fails is dropped: the next run reads from a time"
    _start, after = verify(site, state, lab)
    assert after["logs"]["read"] is True


# ---- counters that cannot be compared ------------------------------------------------------------------------
def test_a_counter_lower_than_before_counts_from_zero_and_says_so(world):
    site, state, lab = world
    verify(site, state, lab)
    lab.counters = {"deny_dev_to_prod": 0, "deny_gateway_input": 0}  # the gateway was rebuilt
    lab.denied("dev->prod", 4)
    _start, found = verify(site, state, lab)
    assert found["gateway"]["read"] is True
    assert found["gateway"]["by_pair"] == {"dev->prod": 4}
    assert (
        "deny_dev_to_prod went down from 19 to 4 (ruleset reloaded or gateway rebuilt): counted from zero"
        in (found["gateway"]["why"])
    )
    assert "deny_gateway_input" in found["gateway"]["why"], "a counter back at zero is a reset too"


def test_counters_unreadable_at_the_previous_end_are_not_compared(world):
    site, state, lab = world
    lab.counters_fail = "the gateway 10.90.0.254 could not be reached over SSH: timed out"
    verify(site, state, lab)
    lab.counters_fail = None
    lab.denied("dev->prod", 2)
    lab.refused_login(key(site, "bob"), "bob", DEV_HOST)
    _start, found = verify(site, state, lab)
    assert found["gateway"]["read"] is False and found["gateway"]["by_pair"] == {}
    assert found["gateway"]["why"] == (
        "the counters at the previous run's end could not be read (the gateway 10.90.0.254 could not be reached "
        "over SSH: timed out)"
    )
    assert found["by_person"] == {"bob": {"ssh": 1, "sudo": 0}}, "the logs are read all the same"


def test_counters_unreadable_at_this_start_say_so(world):
    site, state, lab = world
    verify(site, state, lab)
    lab.counters_fail = "`nft` on the gateway 10.90.0.254 failed: sudo: a password is required"
    _start, found = verify(site, state, lab)
    assert found["gateway"]["read"] is False
    assert found["gateway"]["why"] == f"at this run's start: {lab.counters_fail}"


def test_a_run_that_never_finished_makes_the_next_count_nothing_and_the_one_after_count_again(world):
    site, state, lab = world
    verify(site, state, lab)
    before_run(site, state, lab)  # a run that was killed: its probes follow, its after_run never comes
    lab.denied("dev->prod", 12)
    lab.refused_login(key(site, "alice"), "alice", CONTROLLER)
    lab.later(300)
    _start, found = verify(site, state, lab)
    assert found["since"] is None and "did not finish" in found["window"]
    assert found["gateway"]["by_pair"] == {} and found["refused"] == []
    lab.denied("dev->prod", 1)
    _start, after = verify(site, state, lab)
    assert after["gateway"]["by_pair"] == {"dev->prod": 1}
    assert "running" not in json.loads(state_path(state).read_text())


# ---- the shipped journals ------------------------------------------------------------------------------------
def test_a_production_host_without_a_copy_is_named_and_the_others_still_count(world):
    site, state, lab = world
    (state.host_logs_dir / f"remote-{PROD_DB1}.journal").unlink()
    verify(site, state, lab)
    lab.refused_sudo("carol", PROD_APP1)
    _start, found = verify(site, state, lab)
    assert found["logs"]["read"] is False
    assert "no copy of prod-db1's journal on the controller" in found["logs"]["why"]
    assert "prod-app1" not in found["logs"]["why"]
    assert found["by_person"] == {"carol": {"ssh": 0, "sudo": 1}}


def test_a_site_without_production_has_no_logs_to_read(tmp_path):
    data = example_data()
    data["environments"] = [e for e in data["environments"] if e["name"] != "prod"]
    data["hosts"] = [h for h in data["hosts"] if h["environment"] != "prod"]
    data["releases"]["path"] = ["dev", "test"]
    site = LoadedSite(Site.model_validate(data), EXAMPLE)
    state = SiteState("example", tmp_path / "state")
    lab = Lab(site.model, state)
    verify(site, state, lab, probes=False)
    _start, found = verify(site, state, lab, probes=False)
    assert found["logs"] == {"read": False, "why": "the site has no production host: no journal is shipped"}


def test_journal_files_are_those_of_the_exact_sending_address(tmp_path):
    for name in ("remote-10.90.30.1.journal", "remote-10.90.30.11.journal", "remote-10.90.30.1@0005-0006.journal",
                 "remote-10.90.30.1.journal~", "remote-10.90.30.100.journal", "other.journal"):  # fmt: skip
        (tmp_path / name).write_text("")
    assert [p.name for p in journal_files(tmp_path, "10.90.30.1")] == [
        "remote-10.90.30.1.journal", "remote-10.90.30.1.journal~", "remote-10.90.30.1@0005-0006.journal",
    ]  # fmt: skip
    assert journal_files(tmp_path / "absent", "10.90.30.1") == []


# ---- nothing secret, and into the history -------------------------------------------------------------------
def test_the_attempts_hold_no_secret_of_the_site(world):
    site, state, lab = world
    state.secrets_dir.mkdir(parents=True, exist_ok=True)
    secret = "s3cret-db-password-4711"
    (state.secrets_dir / "db_password").write_text(secret + "\n")
    verify(site, state, lab)
    lab.logged(PROD_APP1, invalid_user(lab.later(1), lab.next_pid(), secret, DEV_HOST, key(site, "bob")))
    _start, found = verify(site, state, lab)
    assert found["refused"] and all(secret not in json.dumps(r) for r in found["refused"])
    assert found["refused"][0]["user"] == MASK
    run_dir = max(state.runs_dir.iterdir())
    assert secret not in (run_dir / ATTEMPTS_FILE).read_text()


def test_the_history_entry_carries_the_attempts_and_none_without(world):
    site, state, lab = world
    _start, found = verify(site, state, lab)
    rows = [{"control": "NET-1", "status": "pass"}]
    record_run(state, state.runs_dir / "run-a", rows, attempts=found)
    record_run(state, state.runs_dir / "run-b", rows)
    first, second = read_history(state)
    assert first["attempts"] == found and "attempts" not in second


def test_without_the_gateway_s_host_key_no_connection_is_tried(tmp_path):
    site = LoadedSite(Site.model_validate(example_data()), EXAMPLE)
    state = SiteState("example", tmp_path / "state")
    state.ensure()
    state.known_hosts.write_text("10.90.30.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n")
    sources = LiveSources(site.model, state)
    with pytest.raises(Unreadable, match=r"the gateway 10.90.0.254's host key is not known here"):
        sources.gateway_counters()
    assert sources._remote is None, "no SSH connection was set up"
    assert known_host(state.known_hosts, "10.90.30.11") and not known_host(state.known_hosts, "10.90.30.1")
    assert not known_host(tmp_path / "absent", "10.90.30.11")
