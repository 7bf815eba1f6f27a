"""`provision watch install|remove|status`: the watcher's configuration on the controller and its scheduler."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.people_keys import check_people_keys
from provisioner.conformance.verify import DEFAULT_WORKERS as DEFAULT_WORKERS
from provisioner.conformance.verify import check_arguments
from provisioner.controller.scheduler import Job, Scheduler, cron_daemon_pids
from provisioner.engine.watch import due as schedule_due
from provisioner.engine.watch.alerts import AlertBook
from provisioner.engine.watch.folder import WatcherConfig, WatchFolder, iso
from provisioner.errors import InputError, shown
from provisioner.paths import state_root
from provisioner.site.load import LoadedSite, load_site
from provisioner.site.watch_schedules import covered
from provisioner.workspace.site_state import SiteState, operator

CRON_WINDOW = 60  # cron starts the tick every minute; the tick keeps going for that long
NO_CRON = "no cron daemon runs on this machine: nothing will be verified until one does (start it: `cron`)"


def _folder(site: str) -> WatchFolder:
    return WatchFolder(SiteState(site))


def site_name(ref: str) -> str:
    """A site name whose watcher's folder exists, or the name of the site file `ref` names (remove and status
    work from the name even once the site file is gone or invalid)."""
    if ref and "/" not in ref and _folder(ref).root.is_dir():
        return ref
    return load_site(ref).name


def scheduler_of(site: str) -> str | None:
    """The scheduler (systemd or cron) of the site's installed watcher; None when none is installed."""
    folder = _folder(site)
    return folder.config().scheduler if folder.has_config() else None


def _notify_command(notify: str | None) -> list[str] | None:
    if notify is None:
        return None
    wanted = "a command and its arguments, run without a shell, such as '/usr/local/bin/page-oncall --team ops'"
    try:
        argv = shlex.split(notify)
    except ValueError as exc:
        raise InputError(f"--notify {shown(notify)}: {exc}; {wanted}") from None
    if not argv:
        raise InputError(f"--notify {shown(notify)}: empty; {wanted}")
    program = argv[0]
    found = program if "/" in program else shutil.which(program, path=os.environ.get("PATH"))
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise InputError(f"--notify: {shown(program)} is no program found on this machine; {wanted}")
    return [str(Path(found).absolute()), *argv[1:]]


@dataclass
class Installed:
    config: WatcherConfig
    config_path: Path
    files: list[Path]
    cron_running: bool | None  # None: the scheduler is systemd
    warnings: list[str]


def install(
    site: LoadedSite,
    keys: str,
    notify: str | None = None,
    scheduler_kind: str = "auto",
    workers: int = DEFAULT_WORKERS,
    scheduler: Scheduler | None = None,
    proc: Path = Path("/proc"),
) -> Installed:
    """Check everything, then write the watcher's configuration (0600) and the scheduler's files."""
    watch = site.model.watch
    if watch is None:
        raise InputError(
            f"{site.path}: the site file declares no watch: section; add one (schedules: name, every, controls) "
            "before `provision watch install`"
        )
    keys_dir = check_arguments(keys, None)
    if keys_dir is not None:  # as verify checks them before each run: refused now rather than at every tick
        check_people_keys(keys, keys_dir, [person.name for person in site.model.people])
    argv = _notify_command(notify)
    scheduler = scheduler or Scheduler()
    kind = scheduler.choose(scheduler_kind)
    folder = _folder(site.name)
    interval = min(s.seconds for s in watch.schedules)
    command = [str(Path(sys.executable).absolute()), "-m", "provisioner", "watch", "tick", site.name]
    if kind == "cron":
        command += ["--for", str(CRON_WINDOW)]
    environment = [("PROVISION_STATE_DIR", str(state_root()))]
    if os.environ.get("PROVISION_HOME"):
        environment.append(("PROVISION_HOME", os.environ["PROVISION_HOME"]))
    job = Job(
        site=site.name,
        command=tuple(command),
        environment=tuple(environment),
        interval=interval,
        user=pwd.getpwuid(os.geteuid()).pw_name,
        output_log=folder.scheduler_output,
    )
    config = WatcherConfig(
        site=site.name,
        site_file=str(site.path.absolute()),
        keys_dir=str(keys_dir.absolute()) if keys_dir else None,
        notify=argv,
        workers=workers,
        scheduler=kind,
        interval=interval,
        files=[str(p) for p in scheduler.files(kind, site.name)],
        installed=iso(dt.datetime.now(dt.UTC)),
        installed_by=operator(),
    )
    config_path = folder.write_config(config)
    scheduler.remove(site.name)  # a watcher installed before, perhaps with the other scheduler
    files = scheduler.install(kind, job)
    warnings = []
    cron_running = None
    if kind == "cron":
        cron_running = bool(cron_daemon_pids(proc))
        if not cron_running:
            warnings.append(NO_CRON)
    return Installed(config, config_path, files, cron_running, warnings)


def remove(ref: str, scheduler: Scheduler | None = None) -> list[Path]:
    """Stop the scheduler and remove its files and the watcher's configuration; the history, the schedules'
    last runs and the alert state stay (they are evidence)."""
    name = site_name(ref)
    scheduler = scheduler or Scheduler()
    removed = scheduler.remove(name)
    folder = _folder(name)
    if folder.remove_config():
        removed.append(folder.config_path)
    return removed


def status(ref: str, scheduler: Scheduler | None = None, proc: Path = Path("/proc")) -> dict[str, Any]:
    """What the watcher of a site does: its scheduler and files, the daemon, each schedule's last run and next
    due time, open failure windows, the last notification."""
    name = site_name(ref)
    scheduler = scheduler or Scheduler()
    folder = _folder(name)
    now = dt.datetime.now(dt.UTC)
    data: dict[str, Any] = {"site": name, "installed": folder.has_config(), "folder": str(folder.root)}
    warnings: list[str] = []
    config = folder.config() if folder.has_config() else None
    kind = config.scheduler if config else None
    if kind in ("systemd", "cron"):
        files = scheduler.files(kind, name)
    else:
        files = [p for k in ("systemd", "cron") for p in scheduler.files(k, name) if p.exists()]
    data["scheduler"] = kind
    data["files"] = [{"path": str(p), "present": p.exists()} for p in files]
    if config and not all(p.exists() for p in files):
        warnings.append("scheduler files are missing: run `provision watch install` again")
    if not config and files:
        warnings.append("scheduler files without a watcher configuration: run `provision watch remove`")
    if kind == "cron":
        pids = cron_daemon_pids(proc)
        data["daemon"] = {"name": "cron", "running": bool(pids), "pids": pids}
        if not pids:
            warnings.append(NO_CRON)
    elif kind == "systemd":
        active = scheduler.timer_active(name)
        data["daemon"] = {"name": "systemd", "running": active is not None, "timer_active": active}
        if not active:
            warnings.append("the systemd timer is not active: nothing will be verified")
    if config:
        data["notify"] = Path(config.notify[0]).name if config.notify else None  # the program, not its arguments
        data["keys_dir"] = config.keys_dir
        data["site_file"] = config.site_file
        data["interval"] = config.interval
    data["schedules"] = _schedules(folder, config, now, warnings)
    alerts = AlertBook(folder)
    data["failure_windows"] = [
        {"control": cid, "title": CONTROLS[cid].title if cid in CONTROLS else "", **window}
        for cid, window in sorted(alerts.open_windows().items())
    ]
    data["pending_notifications"] = [{"control": e["control"], "event": e["event"]} for e in alerts.pending]
    data["last_notification"] = alerts.last
    data["notifications_delivered"] = alerts.delivered
    data["log"] = folder.log_tail(5)
    data["warnings"] = warnings
    return data


def _schedules(
    folder: WatchFolder, config: WatcherConfig | None, now: dt.datetime, warnings: list[str]
) -> list[dict[str, Any]]:
    runs = folder.last_runs()
    if config is None:
        return [{"name": n, **r} for n, r in runs.items()]
    try:
        site = load_site(config.site_file)
    except Exception as exc:  # the site file is not valid now: the tick will refuse it too
        warnings.append(f"the site file {config.site_file} is not valid now: the tick verifies nothing ({exc})")
        return [{"name": n, **r} for n, r in runs.items()]
    schedules = site.model.watch.schedules if site.model.watch else []
    if schedules and min(s.seconds for s in schedules) != config.interval and config.scheduler == "systemd":
        warnings.append("the site file's shortest schedule changed since install: run `provision watch install`")
    rows = []
    for schedule in schedules:
        record = runs.get(schedule.name, {})
        when = schedule_due.due_at(schedule, record)
        rows.append(
            {
                "name": schedule.name,
                "every": schedule.every,
                "controls": covered(schedule),
                "last_started": record.get("started"),
                "last_finished": record.get("finished"),
                "run": record.get("run"),
                "verdicts": record.get("verdicts"),
                "error": record.get("error"),
                "running": bool(record.get("running")),
                "next_due": iso(when) if when and when > now else "now",
            }
        )
    return rows
