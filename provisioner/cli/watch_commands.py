"""`provision watch install|remove|status|tick`: scheduled verification of a site, and alerts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from provisioner.cli.common import JsonOpt, emit, err, failed_if, handled, load, out
from provisioner.engine.watch import service, ticking

app = typer.Typer(
    help="Scheduled verification (a systemd timer, or cron where systemd does not run) and alerts.",
    no_args_is_help=True,
)

WatchSite = Annotated[str, typer.Argument(help="the site's name (or its site file / directory)", show_default=False)]


class SchedulerKind(StrEnum):
    AUTO = "auto"
    SYSTEMD = "systemd"
    CRON = "cron"


@app.command("install")
@handled()
def install(
    site: WatchSite,
    keys: Annotated[str, typer.Option("--keys", metavar="DIR", help="folder of people's private keys for verify")],
    notify: Annotated[
        str | None,
        typer.Option(
            "--notify",
            metavar="CMD",
            help="command told about a control that fails and recovers: a JSON document on stdin (run without a "
            "shell; kept on this controller, mode 0600)",
        ),
    ] = None,
    scheduler: Annotated[
        SchedulerKind, typer.Option("--scheduler", help="systemd where it runs (auto), or cron")
    ] = SchedulerKind.AUTO,
    workers: Annotated[
        int, typer.Option("--workers", "-n", min=1, max=32, help="verify's parallel workers")
    ] = service.DEFAULT_WORKERS,
    as_json: JsonOpt = False,
) -> None:
    """Verify the site on the schedules its site file declares under watch:, from now on."""
    installed = service.install(load(site), keys, notify, scheduler.value, workers)
    if as_json:
        emit({"site": installed.config.site, "scheduler": installed.config.scheduler,
              "files": [str(p) for p in installed.files], "config": str(installed.config_path),
              "cron_running": installed.cron_running, "warnings": installed.warnings})  # fmt: skip
    else:
        config = installed.config
        out.print(f"watcher of site '{config.site}' installed ({config.scheduler}):", highlight=False)
        for path in installed.files:
            out.print(f"  {path}", highlight=False)
        out.print(f"  configuration: {installed.config_path} (mode 0600)", highlight=False)
        if not config.notify:
            out.print("  no --notify command: failures are recorded, nobody is told", highlight=False)
    for warning in installed.warnings:
        err.print(f"[bold red]warning:[/bold red] {escape(warning)}", highlight=False)


@app.command("remove")
@handled()
def remove(site: WatchSite, as_json: JsonOpt = False) -> None:
    """Stop verifying on a schedule: the scheduler's files and the watcher's configuration go; the history and
    the alert state stay."""
    removed = service.remove(site)
    if as_json:
        emit({"removed": [str(p) for p in removed]})
        return
    if not removed:
        out.print("no watcher was installed: nothing removed", highlight=False)
    for path in removed:
        out.print(f"removed {path}", highlight=False)


@app.command("status")
@handled()
def status(site: WatchSite, as_json: JsonOpt = False) -> None:
    """The watcher of a site: scheduler, files, daemon, each schedule's last run and next, failure windows and
    notifications."""
    data = service.status(site)
    if as_json:
        emit(data)
    else:
        _print_status(data)
    failed_if(bool(data["warnings"]) and data["installed"])


def _print_status(data: dict[str, Any]) -> None:
    say = lambda text: out.print(escape(text), highlight=False)  # noqa: E731
    if not data["installed"]:
        say(f"no watcher is installed for site '{data['site']}'")
    else:
        say(f"watcher of site '{data['site']}': {data['scheduler']}, every {data['interval']}s")
    for f in data["files"]:
        say(f"  {f['path']}: {'in place' if f['present'] else 'MISSING'}")
    daemon = data.get("daemon")
    if daemon and daemon["name"] == "cron":
        pids = ",".join(map(str, daemon["pids"]))
        say(f"  cron daemon: {'running, pid ' + pids if daemon['running'] else 'NOT running'}")
    elif daemon:
        say(f"  systemd timer: {'active' if daemon['timer_active'] else 'NOT active'}")
    if data.get("installed"):
        say(f"  notify: {data['notify'] or 'none'}")
    for s in data["schedules"]:
        verdicts = s.get("verdicts") or {}
        failing = [c for c, v in verdicts.items() if v == "fail"]
        if s.get("error"):
            result = f"did not run: {s['error']}"
        elif s.get("running"):
            result = "running now"
        else:
            result = f"FAILED {', '.join(failing)}" if failing else "no failure" if verdicts else ""
        say(f"schedule {s['name']} (every {s.get('every')}): last run {s.get('last_started') or 'never'}"
            f"{' ' + result if result else ''}; next {s.get('next_due', '?')}")  # fmt: skip
    for w in data["failure_windows"]:
        say(f"failing since {w['start']}: {w['control']} {w['title']} (run {w['run']})")
    last = data["last_notification"]
    if last:
        state = "delivered" if last["delivered"] else f"NOT delivered ({last['detail']}), retried next tick"
        say(f"last notification: {last['control']} {last['event']} at {last['time']}: {state}")
    for warning in data["warnings"]:
        err.print(f"[bold red]warning:[/bold red] {escape(warning)}", highlight=False)


@app.command("tick")
@handled()
def tick(
    site: Annotated[str, typer.Argument(help="the site's name", show_default=False)],
    for_seconds: Annotated[
        int, typer.Option("--for", metavar="N", min=0, max=3600, help="keep ticking for N seconds")
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """What the scheduler runs: verify each schedule that is due and send the alerts it causes. Exit 2 when the
    site file is not valid (nothing verified), 1 when a due verify could not run."""
    report = ticking.tick(service.site_name(site), for_seconds=for_seconds)
    if as_json:
        emit({"site": report.site, "locked": report.locked, "ran": report.ran, "deliveries": report.deliveries})
    elif not report.locked:
        out.print("another tick is running: nothing done", highlight=False)
    else:
        for run in report.ran:
            out.print(escape(f"{run['schedule']}: {run.get('error') or run.get('run')}"), highlight=False)
    failed_if(any(run.get("error") for run in report.ran))
