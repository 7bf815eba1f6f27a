"""What the sysadmin sees while provision works: backend steps, then a live table per host and task."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table


@dataclass
class HostLine:
    task: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


class Progress:
    """Thread-safe: backends report from worker threads."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.hosts: dict[str, HostLine] = {}
        self.play = ""
        self._lock = threading.Lock()
        self._live: Live | None = None

    def say(self, message: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self.console.print(f"[dim]·[/dim] {escape(message)}", highlight=False)

    # ---- ansible-runner events -----------------------------------------------------------------
    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host = data.get("host")
        with self._lock:
            if kind == "playbook_on_play_start":
                self.play = data.get("play", "")
                if self._live is None and not self.quiet:
                    self.console.print(f"[bold]PLAY[/bold] {escape(self.play)}", highlight=False)
            elif kind == "runner_on_start" and host:
                self.hosts.setdefault(host, HostLine()).task = data.get("task", "")
            elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped") and host:
                line = self.hosts.setdefault(host, HostLine())
                changed = bool((data.get("res") or {}).get("changed"))
                if kind == "runner_on_ok":
                    line.ok += 1
                    line.changed += int(changed)
                elif kind == "runner_on_failed" and not data.get("ignore_errors"):
                    line.failed += 1
                elif kind == "runner_on_unreachable":
                    line.unreachable += 1
                elif kind == "runner_on_skipped":
                    line.skipped += 1
                if (
                    self._live is None
                    and not self.quiet
                    and (changed or kind in ("runner_on_failed", "runner_on_unreachable"))
                ):
                    status = {
                        "runner_on_failed": "[red]failed[/red]",
                        "runner_on_unreachable": "[red]unreachable[/red]",
                    }
                    self.console.print(
                        f"  {host}: {escape(data.get('task', ''))} → {status.get(kind, '[yellow]changed[/yellow]')}",
                        highlight=False,
                    )
            if self._live is not None:
                self._live.update(self.table())

    def table(self) -> Table:
        table = Table(title=self.play or "ansible", expand=False)
        for column in ("host", "task", "ok", "changed", "failed", "unreachable"):
            table.add_column(column)
        for host, line in sorted(self.hosts.items()):
            table.add_row(
                host,
                escape(line.task[:60]),
                str(line.ok),
                f"[yellow]{line.changed}[/yellow]" if line.changed else "0",
                f"[red]{line.failed}[/red]" if line.failed else "0",
                f"[red]{line.unreachable}[/red]" if line.unreachable else "0",
            )
        return table

    def __enter__(self) -> Progress:
        if self.console.is_terminal and not self.quiet:
            self._live = Live(self.table(), console=self.console, refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(None, None, None)
            self._live = None
