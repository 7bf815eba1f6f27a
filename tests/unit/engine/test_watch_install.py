"""`provision watch install|remove|status` (issue 21): exactly the scheduler's files in a temporary system root
(cron where systemd does not run, a oneshot service and a timer where it does), the watcher's configuration on the
controller (mode 0600), nothing written for a site without watch:, and plain words when no cron daemon runs."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import EXAMPLE, run_cli
from watch_support import NotifyRecorder, watched_site

from provisioner.controller.scheduler import Scheduler, cron_daemon_pids
from provisioner.engine.watch import service
from provisioner.engine.watch.folder import WatchFolder
from provisioner.errors import InputError
from provisioner.site.load import load_site
from provisioner.workspace.site_state import SiteState


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder and an empty system root (no systemd), both temporary; a keys folder."""
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PROVISION_SYSTEM_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    (tmp_path / "keys").mkdir(mode=0o700)
    return tmp_path


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def fake_proc(folder: Path, **processes: str) -> Path:
    """A /proc with the given pid -> command name entries."""
    for pid, name in processes.items():
        (folder / pid.removeprefix("p")).mkdir(parents=True)
        (folder / pid.removeprefix("p") / "comm").write_text(name + "\n")
    folder.mkdir(exist_ok=True)
    return folder


class RecordingSystemctl:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(list(args))
        return "active\n" if args[:1] == ["is-active"] else ""


def test_cron_install_writes_one_cron_file_and_the_configuration_0600(world: Path):
    site = load_site(watched_site(world / "site"))
    notify = NotifyRecorder(world / "notify")
    no_cron = fake_proc(world / "proc", p1="init", p77="sshd")
    installed = service.install(site, str(world / "keys"), notify.command, "auto", 2, proc=no_cron)
    assert installed.config.scheduler == "cron"
    assert files_under(world / "root") == ["etc/cron.d/provision-watch-example"]
    cron = (world / "root/etc/cron.d/provision-watch-example").read_text()
    assert stat.S_IMODE((world / "root/etc/cron.d/provision-watch-example").stat().st_mode) == 0o644
    [line] = [line for line in cron.splitlines() if line.startswith("* * * * * ")]
    fields = line.split()
    assert fields[5] == "root", "cron.d lines name the user"
    assert f"PROVISION_STATE_DIR={world / 'state'}" in line
    assert f"{sys.executable} -m provisioner watch tick example --for 60" in line and Path(sys.executable).is_absolute()
    assert line.endswith(f">>{world / 'state/example/watch/scheduler-output.log'} 2>&1")
    config_path = world / "state/example/watch/watcher.json"
    assert installed.config_path == config_path and stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700
    config = installed.config
    assert config.site_file == str(site.path.absolute()) and config.keys_dir == str(world / "keys")
    assert config.notify == shlex.split(notify.command) and config.interval == 20 and config.workers == 2
    assert installed.cron_running is False and installed.warnings == [service.NO_CRON]
    running = service.install(site, str(world / "keys"), None, "cron", proc=fake_proc(world / "proc2", p9="cron"))
    assert running.cron_running is True and running.warnings == []
    assert files_under(world / "root") == ["etc/cron.d/provision-watch-example"], "a second install replaces it"


def test_the_cron_line_runs_the_tick_as_written(world: Path):
    """The command of the cron line, run by sh as cron would (with --for 0 instead of a whole minute): the tick
    finds the watcher's configuration through the line's own environment, and tries verify, which refuses a site
    never applied here; that is recorded as the schedule's error."""
    site = load_site(watched_site(world / "site"))
    service.install(site, str(world / "keys"), None, "cron")
    [line] = [x for x in (world / "root/etc/cron.d/provision-watch-example").read_text().splitlines() if x[:1] == "*"]
    command = line.split(None, 6)[6].replace("--for 60", "--for 0")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(world)}  # cron's environment: none of this test's variables
    proc = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # stdout and stderr went to the output log
    runs = WatchFolder(SiteState("example")).last_runs()
    assert set(runs) == {"fast", "slow"}
    assert "has not been applied here yet" in runs["fast"]["error"]
    assert "schedule fast: verify did not run" in (world / "state/example/watch/tick.log").read_text()
    assert (world / "state/example/watch/scheduler-output.log").exists()


def test_systemd_install_writes_a_oneshot_service_and_a_timer_at_the_shortest_interval(world: Path):
    (world / "root/run/systemd/system").mkdir(parents=True)
    systemctl = RecordingSystemctl()
    scheduler = Scheduler(systemctl=systemctl)
    site = load_site(watched_site(world / "site"))
    installed = service.install(site, str(world / "keys"), None, "auto", scheduler=scheduler)
    assert installed.config.scheduler == "systemd" and installed.cron_running is None and installed.warnings == []
    assert files_under(world / "root") == [
        "etc/systemd/system/provision-watch-example.service",
        "etc/systemd/system/provision-watch-example.timer",
    ]
    assert systemctl.calls == [["daemon-reload"], ["enable", "--now", "provision-watch-example.timer"]]
    unit = (world / "root/etc/systemd/system/provision-watch-example.service").read_text()
    assert "Type=oneshot" in unit and "User=root" in unit
    assert f"ExecStart={sys.executable} -m provisioner watch tick example\n" in unit, "no --for: one pass a timer"
    assert f"Environment=PROVISION_STATE_DIR={world / 'state'}" in unit
    timer = (world / "root/etc/systemd/system/provision-watch-example.timer").read_text()
    assert "OnUnitActiveSec=20s" in timer and "AccuracySec=1s" in timer and "WantedBy=timers.target" in timer
    assert "Unit=provision-watch-example.service" in timer

    status = service.status("example", scheduler=scheduler)
    assert status["scheduler"] == "systemd" and all(f["present"] for f in status["files"])
    assert status["daemon"] == {"name": "systemd", "running": True, "timer_active": True}

    removed = service.remove("example", scheduler=scheduler)
    assert systemctl.calls[3:] == [["disable", "--now", "provision-watch-example.timer"], ["daemon-reload"]]
    assert files_under(world / "root") == [] and len(removed) == 3, removed
    assert not (world / "state/example/watch/watcher.json").exists()


def test_systemd_where_it_does_not_run_is_refused(world: Path):
    site = load_site(watched_site(world / "site"))
    with pytest.raises(InputError, match="--scheduler systemd: systemd does not run on this machine"):
        service.install(site, str(world / "keys"), None, "systemd")
    assert files_under(world / "root") == [] and not (world / "state").exists()


def test_remove_takes_exactly_the_watchers_files_and_keeps_its_evidence(world: Path):
    site = load_site(watched_site(world / "site"))
    (world / "root/etc/cron.d").mkdir(parents=True)
    (world / "root/etc/cron.d/e2scrub_all").write_text("# someone else's\n")
    service.install(site, str(world / "keys"), None, "cron")
    folder = WatchFolder(SiteState("example"))
    folder.record_run("fast", {"started": "2026-12-05T12:00:00+00:00"})
    removed = service.remove("example")
    assert sorted(str(p) for p in removed) == sorted(
        [str(world / "root/etc/cron.d/provision-watch-example"), str(folder.config_path)]
    )
    assert files_under(world / "root") == ["etc/cron.d/e2scrub_all"]
    assert folder.last_runs()["fast"]["started"], "the schedules' last runs stay"
    assert service.remove("example") == [], "nothing left to remove"


def test_status_says_plainly_that_no_cron_daemon_runs(world: Path):
    site = load_site(watched_site(world / "site"))
    service.install(site, str(world / "keys"), None, "cron")
    status = service.status("example", proc=fake_proc(world / "proc"))
    assert status["daemon"] == {"name": "cron", "running": False, "pids": []}
    assert service.NO_CRON in status["warnings"]
    assert [s["name"] for s in status["schedules"]] == ["fast", "slow"]
    assert all(s["next_due"] == "now" and s["last_started"] is None for s in status["schedules"])
    running = service.status("example", proc=fake_proc(world / "proc2", p321="cron"))
    assert running["daemon"]["running"] is True and running["warnings"] == []
    assert cron_daemon_pids(fake_proc(world / "proc3", p5="crond", p6="bash")) == [5]


def test_the_cli_refuses_a_site_without_watch_and_writes_nothing(world: Path):
    env = {"PROVISION_STATE_DIR": str(world / "state"), "PROVISION_SYSTEM_ROOT": str(world / "root")}
    result = run_cli("watch", "install", str(EXAMPLE), "--keys", str(world / "keys"), env=env)
    assert result.rc == 2, result.stdout + result.stderr
    assert "declares no watch: section" in result.stderr and "Traceback" not in result.stderr
    assert files_under(world / "root") == [] and not (world / "state").exists()


def test_the_cli_refuses_a_notify_program_that_does_not_exist(world: Path):
    env = {"PROVISION_STATE_DIR": str(world / "state"), "PROVISION_SYSTEM_ROOT": str(world / "root")}
    site = watched_site(world / "site")
    result = run_cli("watch", "install", str(site), "--keys", str(world / "keys"), "--notify", "no-such-pager --x",
                     env=env)  # fmt: skip
    assert result.rc == 2 and "--notify: no-such-pager is no program found on this machine" in result.stderr
    assert files_under(world / "root") == [] and not (world / "state").exists()


def test_the_cli_install_and_status_name_the_files_and_the_cron_daemon(world: Path):
    env = {"PROVISION_STATE_DIR": str(world / "state"), "PROVISION_SYSTEM_ROOT": str(world / "root")}
    site = watched_site(world / "site")
    installed = run_cli("watch", "install", str(site), "--keys", str(world / "keys"), env=env)
    assert installed.rc == 0, installed.stdout + installed.stderr
    assert str(world / "root/etc/cron.d/provision-watch-example") in installed.stdout
    cron_runs = bool(cron_daemon_pids())  # this machine's: cron is installed but not started here
    assert ("no cron daemon runs on this machine: nothing will be verified" in installed.stderr) is not cron_runs
    status = run_cli("watch", "status", "example", env=env)
    assert status.rc == (0 if cron_runs else 1), status.stdout + status.stderr
    assert "provision-watch-example: in place" in status.stdout
    assert ("cron daemon: NOT running" in status.stdout) is not cron_runs
    data = run_cli("watch", "status", "example", "--json", env=env).json
    assert isinstance(data, dict) and data["scheduler"] == "cron" and data["notify"] is None
    removed = run_cli("watch", "remove", "example", env=env)
    assert removed.rc == 0 and files_under(world / "root") == []
    assert os.path.exists(world / "state/example/watch"), "the watcher's folder (its evidence) stays"


def test_doctor_says_whether_the_cron_daemon_of_a_cron_watcher_runs(world: Path):
    from provisioner.engine import doctor

    [program, daemon] = doctor.watch_findings("cron", proc=fake_proc(world / "proc"))
    assert program.check == "file /usr/sbin/cron" and program.ok, program
    assert (daemon.check, daemon.ok) == ("daemon cron", False) and "nothing is verified" in daemon.detail
    assert "cron" in daemon.fix
    [running] = doctor.watch_findings("cron", with_programs=False, proc=fake_proc(world / "proc2", p42="cron"))
    assert running.ok and running.detail == "running, pid 42"
    [systemctl] = doctor.watch_findings("systemd")
    assert systemctl.check == "program systemctl"
    assert service.scheduler_of("example") is None
    service.install(load_site(watched_site(world / "site")), str(world / "keys"), None, "cron")
    assert service.scheduler_of("example") == "cron"


def test_a_percent_sign_is_escaped_for_cron_and_for_systemd(tmp_path: Path):
    from provisioner.controller.scheduler import Job, cron_file, service_unit

    job = Job("example", ("/opt/100%/python", "-m", "provisioner"), (("PROVISION_STATE_DIR", "/srv/5%"),), 20, "root",
              tmp_path / "a%b.log")  # fmt: skip
    line = cron_file(job).splitlines()[-1]
    assert "/opt/100\\%/python" in line and "/srv/5\\%" in line and "a\\%b.log" in line
    assert "%" not in line.replace("\\%", "")
    unit = service_unit(job)
    assert "ExecStart=/opt/100%%/python -m provisioner" in unit and "PROVISION_STATE_DIR=/srv/5%%" in unit


def test_a_key_others_may_read_is_refused_at_install_not_at_every_tick(world: Path):
    key = world / "keys" / "alice"
    key.write_text("not really a key\n")
    key.chmod(0o644)
    site = load_site(watched_site(world / "site"))
    with pytest.raises(InputError, match="verify uses only private keys that are yours and mode 0600"):
        service.install(site, str(world / "keys"), None, "cron")
    assert files_under(world / "root") == [] and not (world / "state").exists()
