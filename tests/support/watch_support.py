"""For the watcher's tests (unit and lab): a site file with a watch: section, a notification command that records
what it was given (a small Python script, run by this interpreter), and a clock the tests move."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from helpers import example_data, write_site

SCHEDULES = [
    {"name": "fast", "every": "20s", "controls": ["NET-2"]},
    {"name": "slow", "every": "1h", "controls": ["ACC"]},
]

# Appends its stdin (the event document) and the PROVISION_* variables it got to CALLS; exits with the number in
# EXIT_FILE when that file exists (so a test can make a delivery fail), or sleeps for the seconds in SLEEP_FILE.
NOTIFY_SCRIPT = """
import json, os, sys, time
calls, exit_file, sleep_file = sys.argv[1:4]
document = json.loads(sys.stdin.read())
document["_env"] = {k: v for k, v in os.environ.items() if k.startswith("PROVISION")}
with open(calls, "a") as handle:
    handle.write(json.dumps(document) + "\\n")
if os.path.exists(sleep_file):
    time.sleep(float(open(sleep_file).read()))
sys.exit(int(open(exit_file).read()) if os.path.exists(exit_file) else 0)
"""


def watched_site(folder: Path, schedules: list[dict[str, Any]] | None = None) -> Path:
    """The example site with a watch: section (site name 'example'), written to folder/site.yml."""
    data = example_data()
    data["watch"] = {"schedules": schedules or SCHEDULES, "grace": "1m"}
    return write_site(folder, data)


class NotifyRecorder:
    """A real notification command; `calls()` are the documents it received, in order."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.script = folder / "notify.py"
        self.script.write_text(NOTIFY_SCRIPT)
        self.calls_file = folder / "calls.jsonl"
        self.exit_file = folder / "exit-code"
        self.sleep_file = folder / "sleep"

    @property
    def command(self) -> str:
        return f"{sys.executable} {self.script} {self.calls_file} {self.exit_file} {self.sleep_file}"

    def calls(self) -> list[dict[str, Any]]:
        text = self.calls_file.read_text() if self.calls_file.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def fail_with(self, code: int | None) -> None:
        if code is None:
            self.exit_file.unlink(missing_ok=True)
        else:
            self.exit_file.write_text(str(code))


class FakeClock:
    """Now, moved by the test and by sleep()."""

    def __init__(self, start: dt.datetime | None = None):
        self.moment = start or dt.datetime(2026, 12, 5, 12, 0, 0, tzinfo=dt.UTC)
        self.slept: list[float] = []

    def now(self) -> dt.datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)
