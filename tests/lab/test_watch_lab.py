"""Continuous verification on the shared lab (issue 21), on a compressed schedule: NET-2 every 20 s, run by a real cron
daemon through `provision watch install`, with a real notification command.

One story, in order: the watcher's first runs pass; a connection from dev to prod, a developer's key offered to a
production host and a sudo refused there, all between two runs, are counted as blocked attempts (the gateway's by
pair, the refusals from the shipped journal by person, each once); a hole is opened in the gateway's forward chain
(dev may reach prod) and closed again between runs; the watcher is stopped for longer than its interval and grace,
then started again; the period report over the whole story shows the failure window with its bounds, the gap as "not
verified" and less than every scheduled run; the notification command was called once at the failure and once at the
recovery; deleting one history entry fails the history check, naming where. The lab is left as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import verify_keys
from probes import in_container, tcp_connect
from watch_support import NotifyRecorder

from provisioner.conformance.history import history_path, read_history
from provisioner.conformance.reachability import GATEWAY_TABLE
from provisioner.controller.scheduler import cron_daemon_pids

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(1500)]

EVERY = 20  # seconds between NET-2 runs
GRACE = 20
HOLE = "watch-lab-hole"
CRON = "/usr/sbin/cron"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def wait_for(what: str, found: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"waited {timeout:.0f} s: {what}")


@pytest.fixture(scope="module")
def cron_daemon() -> Iterator[None]:
    """A cron daemon for the test: the one running, or one started here (and stopped again)."""
    running = cron_daemon_pids()
    if running:
        yield
        return
    assert Path(CRON).exists(), "cron is not installed: it is on the Makefile's apt line"
    subprocess.run([CRON], check=True)
    wait_for("cron to start", cron_daemon_pids, 10)
    yield
    stop_cron()


def stop_cron() -> None:
    for pid in cron_daemon_pids():
        os.kill(pid, signal.SIGTERM)
    wait_for("cron to stop", lambda: not cron_daemon_pids(), 10)


@pytest.fixture(scope="module")
def watched(lab, cron_daemon, tmp_path_factory) -> Iterator[tuple[Path, NotifyRecorder]]:
    """The lab's site file with a watch: section (same site, same folder), the watcher installed with cron."""
    data = yaml.safe_load(lab.site_file.read_text())
    data["watch"] = {"schedules": [{"name": "fast", "every": f"{EVERY}s", "controls": ["NET-2"]}], "grace": f"{GRACE}s"}
    site_file = lab.site_file.with_name("site-watched.yml")
    site_file.write_text(yaml.safe_dump(data, sort_keys=False))
    recorder = NotifyRecorder(tmp_path_factory.mktemp("notify"))
    installed = lab.cli(
        "watch", "install", str(site_file), "--keys", str(verify_keys()), "--notify", recorder.command,
        "--scheduler", "cron",
    )  # fmt: skip
    assert installed.rc == 0, installed.stdout + installed.stderr
    yield site_file, recorder
    lab.cli("watch", "remove", str(site_file))
    wait_for("the last tick to end", lambda: not tick_running(), 120)
    close_hole(f"{lab.site.name}-gateway")
    site_file.unlink(missing_ok=True)


def tick_running() -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"provisioner watch tick" in line:
                return True
    return False


def watch_runs(lab, since: dt.datetime) -> list[dict[str, Any]]:
    """The watcher's NET-2 runs recorded since `since`, oldest first."""
    return [
        e for e in read_history(lab.state)
        if e.get("trigger") == "watch:fast" and moment(e["time"]) >= since and "NET-2" in e.get("controls", {})
    ]  # fmt: skip


def open_hole(gateway: str, data: dict[str, Any]) -> None:
    dev = next(e for e in data["environments"] if e["tier"] == "development")["segment"]["cidr"]
    prod = next(e for e in data["environments"] if e["tier"] == "production")["segment"]["cidr"]
    done = in_container(
        gateway,
        f"nft insert rule inet {GATEWAY_TABLE} forward ip saddr {dev} ip daddr {prod} accept comment '\"{HOLE}\"'",
    )
    assert done.returncode == 0, done.stderr


def close_hole(gateway: str) -> None:
    listed = in_container(gateway, f"nft -a list chain inet {GATEWAY_TABLE} forward").stdout
    for line in listed.splitlines():
        if HOLE in line and "# handle" in line:
            handle = line.rsplit("# handle", 1)[1].strip()
            in_container(gateway, f"nft delete rule inet {GATEWAY_TABLE} forward handle {handle}")


def attempts_between_runs(lab, data: dict[str, Any]) -> tuple[dict[str, Any], dt.datetime, dt.datetime]:
    """Three attempts made together, between two watcher runs: a connection from dev-app1 to prod-db1's PostgreSQL
    port (the gateway refuses it), alice's key offered to prod-app1 from the controller (she has no account in
    production: sshd refuses it), and the deploy identity on prod-app1 asking sudo for a command it may not run,
    with a wrong password (PAM refuses it). Returns the attempts of the first watcher run after them, and when they
    began and ended; attempts that fell inside a run's own window belong to its probes, so they are made again."""
    dev = next(h for h in data["hosts"] if h["environment"] == "dev" and "app" in h.get("roles", []))
    prod_db = next(h for h in data["hosts"] if h["environment"] == "prod" and "db" in h.get("roles", []))
    prod_app = next(h for h in data["hosts"] if h["environment"] == "prod" and "app" in h.get("roles", []))
    keys = verify_keys()
    for _ in range(3):
        began = utc_now()
        refused = tcp_connect(f"{lab.site.name}-{dev['name']}", prod_db["address"], 5432)
        assert "connected" not in refused.stdout, refused.stdout
        login = subprocess.run(
            ["ssh", "-i", str(keys / "alice"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
             f"alice@{prod_app['address']}", "true"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert login.returncode == 255 and "Permission denied" in login.stderr, login.stderr
        # a wrong password on stdin: PAM refuses it and says so in the journal (`sudo -n` would be refused without a
        # line: sudo logs neither the missing password nor the denied command then)
        sudo = in_container(
            f"{lab.site.name}-{prod_app['name']}",
            "su -s /bin/sh deploy -c 'echo not-the-password | sudo -S -p \"\" /usr/bin/cat /etc/shadow'",
        )
        assert sudo.returncode != 0 and "root:" not in sudo.stdout, sudo.stdout + sudo.stderr
        ended = utc_now()
        after = wait_for("a watcher run after the attempts", lambda at=ended: watch_runs(lab, at), 120)[0]
        window = after.get("attempts") or {}
        if window.get("since") and moment(window["since"]) <= began and ended <= moment(window["until"]):
            return window, began, ended
    raise AssertionError("three times in a row the attempts fell inside a run's own window")


def refusals_counted(lab, began: dt.datetime, ended: dt.datetime) -> list[dict[str, Any]]:
    """The refusals stamped between `began` and `ended`, as every watcher run since counted them (the journals
    reach the controller by shipping: a later run may count what the first one had not received yet)."""
    low, high = began.replace(microsecond=0), ended + dt.timedelta(seconds=1)
    return [
        refusal for entry in watch_runs(lab, began) for refusal in (entry.get("attempts") or {}).get("refused", [])
        if low <= moment(refusal["time"]) <= high
    ]  # fmt: skip


def test_a_fault_between_runs_a_gap_and_the_alerts(lab, watched, tmp_path):
    site_file, recorder = watched
    data = yaml.safe_load(site_file.read_text())
    gateway = f"{lab.site.name}-gateway"
    started = utc_now()

    # 1. the watcher runs on its own, and NET-2 passes
    wait_for(
        "a passing NET-2 run by the watcher (cron starts the tick at the next minute)",
        lambda: [e for e in watch_runs(lab, started) if e["controls"]["NET-2"] == "pass"],
        180,
    )

    # 1b. attempts between two runs: a connection dev-app1 -> prod-db1:5432 is counted by the next run, by pair;
    # a refused login and a refused sudo on prod-app1 are counted from the shipped journal, by person, each once
    blocked, began, ended = attempts_between_runs(lab, data)
    assert blocked["gateway"]["read"] and blocked["gateway"]["by_pair"].get("dev->prod", 0) >= 1, blocked

    def both_refusals() -> list[dict[str, Any]] | None:
        found = refusals_counted(lab, began, ended)
        return found if {r["what"] for r in found} >= {"ssh", "sudo"} else None

    refusals = wait_for("the refused login and sudo counted by a watcher run", both_refusals, 120)
    counted_by = len(watch_runs(lab, began))
    wait_for("one more watcher run", lambda: len(watch_runs(lab, began)) > counted_by, 90)
    refusals = refusals_counted(lab, began, ended)  # and none counted twice by a later run
    ssh = [(r["host"], r["user"], r["person"], r["from_env"]) for r in refusals if r["what"] == "ssh"]
    sudo = [(r["host"], r["user"], r["person"]) for r in refusals if r["what"] == "sudo"]
    assert ssh == [("prod-app1", "alice", "alice", "mgmt")], refusals
    assert sudo == [("prod-app1", "deploy", None)], refusals

    # 2. a hole in the gateway between two runs; the next run fails NET-2 and the command hears of it once
    fault = utc_now()
    open_hole(gateway, data)
    failing = wait_for(
        "a failing NET-2 run after the hole was opened",
        lambda: [e for e in watch_runs(lab, fault) if e["controls"]["NET-2"] == "fail"],
        150,
    )[0]
    repair = utc_now()
    close_hole(gateway)
    passing = wait_for(
        "a passing NET-2 run after the hole was closed",
        lambda: [e for e in watch_runs(lab, repair) if e["controls"]["NET-2"] == "pass"],
        150,
    )[0]
    calls = wait_for("the recovery notification", lambda: len(recorder.calls()) >= 2 and recorder.calls(), 60)
    events = [(c["event"], c["control"]) for c in calls]
    assert events == [("failed", "NET-2"), ("recovered", "NET-2")], events
    assert calls[0]["_env"]["PROVISION_EVENT"] == "failed" and calls[0]["_env"]["PROVISION_CONTROL"] == "NET-2"
    checks = calls[0]["checks"]  # the evidence: which check failed, on which host, and what it saw
    assert checks and all("reachability" in c["check"] for c in checks), checks

    # 3. the watcher stopped for longer than its interval plus grace, then started again
    stop_cron()
    wait_for("the running tick to end", lambda: not tick_running(), 120)
    stopped = utc_now()
    time.sleep(EVERY + GRACE + 25)
    subprocess.run([CRON], check=True)
    restarted = utc_now()
    wait_for(
        "a NET-2 run after the watcher started again",
        lambda: watch_runs(lab, restarted),
        180,
    )
    ended = utc_now()
    assert len(recorder.calls()) == 2, recorder.calls()  # nothing new: NET-2 passed throughout the gap's ends

    # 4. the period report over the story
    out = tmp_path / "pack"
    report = lab.cli(
        "report", str(site_file), "--from", started.isoformat(), "--to", ended.isoformat(), "--out", str(out),
        "--json", timeout=900,
    )  # fmt: skip
    assert report.rc in (0, 1), report.stdout[-3000:] + report.stderr[-3000:]
    period = json.loads((out / "report.json").read_text())["period"]
    assert period["history"]["ok"], period["history"]
    (window,) = [w for w in period["windows"] if w["control"] == "NET-2"]
    assert window["start"]["run"] == failing["run"] and window["end"]["run"] == passing["run"], window
    assert moment(window["start"]["time"]) >= fault and moment(window["end"]["time"]) >= repair, window
    assert window["last_pass"] is not None and moment(window["last_pass"]["time"]) <= fault, window
    (net2,) = [c for c in period["controls"] if c["id"] == "NET-2"]
    gaps = [s for s in net2["segments"] if s["status"] == "not verified"]
    assert any(
        moment(s["start"]) <= stopped + dt.timedelta(seconds=EVERY + GRACE + 5) and moment(s["end"]) >= restarted
        for s in gaps
    ), net2["segments"]
    after_gap = [
        later["status"] for gap, later in zip(net2["segments"], net2["segments"][1:], strict=False)
        if gap["status"] == "not verified" and moment(gap["end"]) >= restarted
    ]  # fmt: skip
    assert after_gap and after_gap[0] == "pass", net2["segments"]  # the first run after the restart closes the gap
    (fast,) = [s for s in period["schedules"] if s["name"] == "fast"]
    assert fast["ran"] < fast["expected"], fast
    assert period["verdict"]["status"] != "proven", period["verdict"]
    page = (out / "report.html").read_text()
    assert 'class="timeline"' in page and 'data-control="NET-2"' in page, "the timeline is drawn in the HTML"
    assert lab.cli("report", "verify", str(out)).rc == 0, "the period pack checks out like any other"

    # 5. one history entry deleted: the history check fails, naming where; the history is restored after
    chain = history_path(lab.state)
    saved = tmp_path / "chain-copy"
    shutil.copy2(chain, saved)
    lines = chain.read_text().splitlines(keepends=True)
    assert len(lines) >= 3
    chain.write_text("".join(lines[:1] + lines[2:]))
    try:
        checked = lab.cli("history", str(site_file), "--json")
        assert checked.rc == 1, checked.stdout
        problems = checked.json["problems"]
        assert any(p.get("line") == 2 and p.get("kind") == "deleted" for p in problems), problems
    finally:
        shutil.copy2(saved, chain)
    assert lab.cli("history", str(site_file)).rc == 0
