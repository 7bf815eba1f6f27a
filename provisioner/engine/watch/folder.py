"""The watcher's folder in the site's state: its configuration, the schedules' last runs, the tick's log and lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioner.errors import InputError
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState

CONFIG_FILE = "watcher.json"
RUNS_FILE = "schedules.json"
ALERTS_FILE = "alerts.json"
TICK_LOG = "tick.log"
SCHEDULER_OUTPUT = "scheduler-output.log"
LOCK_FILE = "tick.lock"
LOG_LIMIT = 256 * 1024  # the tick log keeps its newest half once it grows past this


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@dataclass
class WatcherConfig:
    """What `provision watch install` was told, kept on the controller (never read from the site file)."""

    site: str
    site_file: str  # absolute
    keys_dir: str | None  # absolute
    notify: list[str] | None  # the command, split with shlex; run without a shell
    workers: int
    scheduler: str  # systemd | cron
    interval: int  # seconds between ticks (systemd); cron ticks every minute
    files: list[str] = field(default_factory=list)
    installed: str = ""
    installed_by: str = ""
    notify_timeout: int = 30

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatcherConfig:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class WatchFolder:
    def __init__(self, state: SiteState):
        self.state = state
        self.root = state.root / "watch"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def tick_log(self) -> Path:
        return self.root / TICK_LOG

    @property
    def scheduler_output(self) -> Path:
        return self.root / SCHEDULER_OUTPUT

    def ensure(self) -> None:
        self.state.ensure()
        self.root.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)

    # ---- configuration ------------------------------------------------------------------------------
    def has_config(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> WatcherConfig:
        if not self.has_config():
            raise InputError(
                f"no watcher is installed for site '{self.state.site}' ({self.config_path} is missing): "
                f"run `provision watch install {self.state.site} --keys DIR` first"
            )
        try:
            return WatcherConfig.from_dict(json.loads(self.config_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{self.config_path}: not a watcher configuration ({exc}); install the watcher again"
            ) from None

    def write_config(self, config: WatcherConfig) -> Path:
        self.ensure()
        write_atomic(self.config_path, json.dumps(asdict(config), indent=1) + "\n", mode=0o600)
        os.chmod(self.config_path, 0o600)
        return self.config_path

    def remove_config(self) -> bool:
        if self.config_path.exists():
            self.config_path.unlink()
            return True
        return False

    # ---- small JSON documents ------------------------------------------------------------------------
    def read(self, name: str) -> dict[str, Any]:
        path = self.root / name
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def write(self, name: str, data: dict[str, Any]) -> None:
        self.ensure()
        write_atomic(self.root / name, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o600)

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """Per schedule name: started, finished, run folder, verdicts, error of its last run."""
        return {k: v for k, v in self.read(RUNS_FILE).items() if isinstance(v, dict)}

    def record_run(self, schedule: str, record: dict[str, Any]) -> None:
        runs = self.last_runs()
        runs[schedule] = record
        self.write(RUNS_FILE, runs)

    # ---- log and lock --------------------------------------------------------------------------------
    def log(self, moment: dt.datetime, line: str) -> None:
        """One line of the tick log: no secrets (run names, verdicts, messages written for the sysadmin)."""
        self.ensure()
        text = f"{iso(moment)} {' '.join(line.split())}\n"
        with open(self.tick_log, "a") as handle:
            handle.write(text)
        if self.tick_log.stat().st_size > LOG_LIMIT:
            kept = self.tick_log.read_text()[-LOG_LIMIT // 2 :]
            write_atomic(self.tick_log, kept[kept.find("\n") + 1 :])

    def log_tail(self, lines: int = 10) -> list[str]:
        return self.tick_log.read_text().splitlines()[-lines:] if self.tick_log.is_file() else []

    @contextlib.contextmanager
    def lock(self, wait: float, sleep: Callable[[float], None]) -> Iterator[bool]:
        """The tick's lock (one tick at a time, dies with the process): yields whether it was taken, waiting up to
        `wait` seconds for a tick that still holds it."""
        self.ensure()
        with open(self.root / LOCK_FILE, "w") as handle:
            waited = 0.0
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if waited >= wait:
                        yield False
                        return
                    sleep(1.0)
                    waited += 1.0
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
