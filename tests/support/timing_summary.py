"""A pytest plugin: at the end of the run, the time each test file took (setup, call and teardown together)."""

from __future__ import annotations

import time
from collections import defaultdict

_per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
_started = time.monotonic()


def pytest_runtest_logreport(report):
    entry = _per_file[report.nodeid.split("::", 1)[0]]
    entry[0] += report.duration
    if report.when == "call":
        entry[1] += 1


def pytest_terminal_summary(terminalreporter):
    if not _per_file:
        return
    write = terminalreporter.write_line
    terminalreporter.section("timing summary per test file")
    width = max(len(name) for name in _per_file)
    for name, (seconds, count) in sorted(_per_file.items(), key=lambda kv: -kv[1][0]):
        write(f"{name:<{width}}  {count:>4} tests  {seconds / 60:6.1f} min  {seconds:8.1f} s")
    total = sum(seconds for seconds, _ in _per_file.values())
    write(f"{'all files':<{width}}  {sum(c for _, c in _per_file.values()):>4} tests  {total / 60:6.1f} min"
          f"  (wall clock {(time.monotonic() - _started) / 60:.1f} min)")  # fmt: skip
