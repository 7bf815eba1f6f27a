"""`provision watch tick` (issue 21): which schedules are due (a clock the test moves), verify run with each
schedule's covered controls and trigger, the lock that keeps ticks apart, an invalid site file (exit 2, nothing
verified); and the alerts, delivered to a real notification command once at the failure and once at the recovery,
again at the next tick when a delivery failed."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli
from watch_support import FakeClock, NotifyRecorder, watched_site

from provisioner.engine.watch import service, ticking
from provisioner.engine.watch.folder import WatcherConfig, WatchFolder
from provisioner.engine.watch.ticking import RunOutcome
from provisioner.errors import InputError, ProvisionError
from provisioner.site.load import LoadedSite, load_site
from provisioner.site.watch_schedules import covered
from provisioner.workspace.site_state import SiteState


class ScriptedVerify:
    """Stands for one verify run: the verdicts the test scripts per control (pass unless told), a failing row for
    each failing control; every call is recorded. It takes `duration` seconds on the clock."""

    def __init__(self, clock: FakeClock, root: Path, duration: float = 0):
        self.clock = clock
        self.root = root
        self.duration = duration
        self.calls: list[tuple[list[str], str]] = []
        self.verdicts: dict[str, str] = {}
        self.error: str | None = None

    def __call__(self, site: LoadedSite, config: WatcherConfig, controls: list[str], trigger: str) -> RunOutcome:
        self.calls.append((controls, trigger))
        self.clock.advance(self.duration)
        if self.error:
            raise ProvisionError(self.error)
        verdicts = {cid: self.verdicts.get(cid, "pass") for cid in controls}
        failing = [
            {"control": cid, "check": "test_gateway_drops", "host": "dev-app1", "status": "fail",
             "evidence": f"probe\n{cid}: dev-app1 reached prod-db1:5432", "observed": ""}
            for cid, verdict in verdicts.items() if verdict == "fail"
        ]  # fmt: skip
        run_dir = self.root / f"run-{len(self.calls)}"
        return RunOutcome(run_dir, verdicts, failing, not failing)


@pytest.fixture
def watcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PROVISION_SYSTEM_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("PROVISION_PVE_TOKEN", "not-for-the-notify-command")
    (tmp_path / "keys").mkdir(mode=0o700)
    site_file = watched_site(tmp_path / "site")
    notify = NotifyRecorder(tmp_path / "notify")
    service.install(load_site(site_file), str(tmp_path / "keys"), notify.command, "cron")
    clock = FakeClock()
    verify = ScriptedVerify(clock, tmp_path / "runs")
    return {"site_file": site_file, "notify": notify, "clock": clock, "verify": verify, "tmp": tmp_path}


def tick(w: dict[str, Any], for_seconds: float = 0) -> ticking.TickReport:
    return ticking.tick("example", for_seconds=for_seconds, verifier=w["verify"], clock=w["clock"])


def folder() -> WatchFolder:
    return WatchFolder(SiteState("example"))


def test_first_tick_runs_every_schedule_then_each_when_its_interval_has_passed(watcher):
    clock, verify = watcher["clock"], watcher["verify"]
    site = load_site(watcher["site_file"])
    assert site.model.watch is not None
    fast, slow = site.model.watch.schedules
    tick(watcher)
    assert verify.calls == [(covered(fast), "watch:fast"), (covered(slow), "watch:slow")]
    assert covered(fast) == ["NET-2"] and covered(slow)[0] == "ACC-1"
    clock.advance(19)
    tick(watcher)
    assert len(verify.calls) == 2, "19 s after its run the 20 s schedule is not due"
    clock.advance(1)
    tick(watcher)
    assert verify.calls[2:] == [(["NET-2"], "watch:fast")]
    clock.advance(3600 - 20)
    tick(watcher)
    assert [trigger for _, trigger in verify.calls[3:]] == ["watch:fast", "watch:slow"]
    runs = folder().last_runs()
    assert runs["slow"]["started"] == "2026-12-05T13:00:00+00:00" and runs["slow"]["verdicts"]["ACC-2"] == "pass"
    assert runs["fast"]["run"].endswith("run-4") and runs["fast"]["ok"] is True


def test_for_a_minute_it_sleeps_until_the_next_due_time(watcher):
    clock, verify = watcher["clock"], watcher["verify"]
    verify.duration = 5  # each verify takes 5 s
    tick(watcher, for_seconds=60)
    triggers = [trigger for _, trigger in verify.calls]
    assert triggers == ["watch:fast", "watch:slow", "watch:fast", "watch:fast"], triggers
    assert clock.slept == [10.0, 15.0], "12:00:10 -> 12:00:20, 12:00:25 -> 12:00:40; the next (12:01:00) is cron's"
    assert clock.now() == dt.datetime(2026, 12, 5, 12, 0, 45, tzinfo=dt.UTC)


def test_a_watcher_removed_during_a_tick_stops_it_before_its_next_run(watcher):
    """`provision watch remove` while cron's tick keeps going for its minute: no verify after the removal."""
    verify = watcher["verify"]
    verify.duration = 5
    site = load_site(watcher["site_file"])
    real = verify.__call__

    def remove_after_the_first_run(*args: Any) -> RunOutcome:
        outcome = real(*args)
        service.remove(site.name)
        return outcome

    watcher["verify"] = remove_after_the_first_run
    tick(watcher, for_seconds=60)
    assert [trigger for _, trigger in verify.calls] == ["watch:fast"], verify.calls
    assert "the watcher was removed: this tick stops" in folder().tick_log.read_text()


def test_a_tick_waits_for_the_lock_and_never_runs_beside_another(watcher):
    verify = watcher["verify"]
    with folder().lock(wait=0, sleep=watcher["clock"].sleep) as taken:
        assert taken
        report = tick(watcher, for_seconds=5)
        assert report.locked is False and verify.calls == []
    assert watcher["clock"].slept == [1.0] * 5, "it waited up to its window for the lock, then gave up"
    assert "another tick holds the lock" in folder().tick_log.read_text()
    assert tick(watcher).locked is True and len(verify.calls) == 2


def test_an_invalid_site_file_is_logged_and_nothing_is_verified(watcher):
    site_file: Path = watcher["site_file"]
    site_file.write_text(site_file.read_text().replace("every: 20s", "every: 5s"))
    with pytest.raises(InputError, match="is not valid, nothing verified"):
        tick(watcher)
    assert watcher["verify"].calls == [] and folder().last_runs() == {}
    assert "is not valid, nothing verified" in folder().tick_log.read_text()
    env = {"PROVISION_STATE_DIR": str(watcher["tmp"] / "state")}
    result = run_cli("watch", "tick", "example", env=env)
    assert result.rc == 2 and "is not valid, nothing verified" in result.stderr and "shorter than 20s" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_site_file_without_watch_any_more_stops_the_tick(watcher):
    site_file: Path = watcher["site_file"]
    text = site_file.read_text()
    site_file.write_text(text[: text.index("watch:")])
    with pytest.raises(InputError, match="no longer declares watch:"):
        tick(watcher)
    assert watcher["verify"].calls == []


def test_a_verify_that_cannot_run_is_recorded_and_waits_for_its_next_turn(watcher):
    clock, verify = watcher["clock"], watcher["verify"]
    verify.error = "site 'example' has not been applied here yet: run `provision apply` first"
    report = tick(watcher)
    assert [r["error"] for r in report.ran] == [verify.error] * 2
    clock.advance(5)
    tick(watcher)
    assert len(verify.calls) == 2, "not retried before its schedule is due again"
    assert folder().last_runs()["fast"]["error"] == verify.error


def test_notify_once_at_the_failure_and_once_at_the_recovery(watcher):
    clock, verify, notify = watcher["clock"], watcher["verify"], watcher["notify"]
    tick(watcher)  # NET-2 passes: nothing to tell
    assert notify.calls() == []
    verify.verdicts["NET-2"] = "fail"
    clock.advance(20)
    tick(watcher)
    [failed] = notify.calls()
    assert failed["event"] == "failed" and failed["control"] == "NET-2" and failed["site"] == "example"
    assert failed["title"].startswith("Default deny between environments")
    assert failed["checks"] == [
        {"check": "test_gateway_drops", "host": "dev-app1", "message": "NET-2: dev-app1 reached prod-db1:5432"}
    ]
    assert failed["window_start"] == "2026-12-05T12:00:20+00:00" and failed["run"].endswith("run-3")
    assert failed["_env"] == {"PROVISION_EVENT": "failed", "PROVISION_CONTROL": "NET-2", "PROVISION_SITE": "example"}
    for _ in range(3):  # still failing: the same window, no more calls
        clock.advance(20)
        tick(watcher)
    assert len(notify.calls()) == 1
    status = service.status("example")
    assert [(w["control"], w["start"]) for w in status["failure_windows"]] == [("NET-2", "2026-12-05T12:00:20+00:00")]
    verify.verdicts["NET-2"] = "pass"
    clock.advance(20)
    tick(watcher)
    first, recovered = notify.calls()
    assert first == failed
    assert recovered["event"] == "recovered" and recovered["control"] == "NET-2" and recovered["checks"] == []
    assert recovered["window_start"] == "2026-12-05T12:00:20+00:00"
    assert recovered["window_end"] == "2026-12-05T12:01:40+00:00"
    status = service.status("example")
    assert status["failure_windows"] == [] and status["last_notification"]["delivered"] is True
    assert status["notifications_delivered"] == 2
    clock.advance(20)
    tick(watcher)
    assert len(notify.calls()) == 2


def test_a_failed_delivery_stays_pending_and_is_retried_at_the_next_tick(watcher):
    clock, verify, notify = watcher["clock"], watcher["verify"], watcher["notify"]
    verify.verdicts["ACC-2"] = "fail"  # first seen failing: that opens a window too
    notify.fail_with(3)
    tick(watcher)
    assert [c["event"] for c in notify.calls()] == ["failed"]
    status = service.status("example")
    assert status["pending_notifications"] == [{"control": "ACC-2", "event": "failed"}]
    assert status["last_notification"]["delivered"] is False and status["last_notification"]["detail"] == "exit 3"
    clock.advance(5)
    tick(watcher)  # nothing due, but the pending event is tried again (and fails again)
    assert len(notify.calls()) == 2 and verify.calls[2:] == []
    notify.fail_with(None)
    clock.advance(5)
    tick(watcher)
    calls = notify.calls()
    assert len(calls) == 3 and calls[0] == calls[1] == calls[2], "the same event until it is delivered"
    status = service.status("example")
    assert status["pending_notifications"] == [] and status["last_notification"]["attempts"] == 3
    assert status["last_notification"]["delivered"] is True
    clock.advance(30)
    tick(watcher)
    assert len(notify.calls()) == 3, "delivered once: not again"
    assert "kept for the next tick" in folder().tick_log.read_text()


def test_a_notify_command_that_hangs_is_stopped_and_kept(watcher):
    notify, verify = watcher["notify"], watcher["verify"]
    config_path = folder().config_path
    config = folder().config()
    config.notify_timeout = 1
    folder().write_config(config)
    notify.sleep_file.write_text("10")
    verify.verdicts["NET-2"] = "fail"
    tick(watcher)
    status = service.status("example")
    assert status["last_notification"]["detail"] == "timed out after 1s" and status["pending_notifications"]
    assert oct(config_path.stat().st_mode)[-3:] == "600"


def test_waived_is_no_failure_and_a_control_not_covered_keeps_its_state(watcher):
    clock, verify, notify = watcher["clock"], watcher["verify"], watcher["notify"]
    verify.verdicts["ACC-5"] = "waived"
    tick(watcher)
    assert notify.calls() == [], "a waived control is an accepted risk, not a failure"
    verify.verdicts["NET-2"] = "fail"
    clock.advance(20)
    tick(watcher)  # only the fast schedule (NET-2) runs
    assert [c["event"] for c in notify.calls()] == ["failed"]
    verify.verdicts["NET-2"] = "skip"  # the run could not verify NET-2: not a recovery
    clock.advance(20)
    tick(watcher)
    assert len(notify.calls()) == 1 and service.status("example")["failure_windows"][0]["control"] == "NET-2"
    verify.verdicts["NET-2"] = "waived"  # a waiver approved: the failure is an accepted risk now
    clock.advance(20)
    tick(watcher)
    assert [(c["event"], c["verdict"]) for c in notify.calls()] == [("failed", "fail"), ("recovered", "waived")]


def test_without_a_notify_command_windows_are_kept_and_nobody_is_called(watcher):
    tmp: Path = watcher["tmp"]
    service.install(load_site(watcher["site_file"]), str(tmp / "keys"), None, "cron")
    watcher["verify"].verdicts["NET-2"] = "fail"
    tick(watcher)
    status = service.status("example")
    assert status["failure_windows"][0]["control"] == "NET-2" and status["pending_notifications"] == []
    assert watcher["notify"].calls() == [] and shlex.split(watcher["notify"].command)


def test_the_tick_log_holds_no_secret(watcher):
    watcher["verify"].verdicts["NET-2"] = "fail"
    tick(watcher)
    log = folder().tick_log.read_text()
    assert "not-for-the-notify-command" not in log and str(watcher["notify"].script) not in log
    assert "schedule fast: run run-1 FAILED NET-2" in log and "NET-2 failed (window from" in log
