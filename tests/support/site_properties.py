"""What the site-file loader must do with any file at all (issue 16), checked one mutant at a time.

For every file, `provision validate` (provisioner.site.load.load_site):
  (a) finishes within LOAD_LIMIT seconds of CPU time (and a worker silent for longer than that plus GRACE
      seconds of wall time counts as hung);
  (b) accepts it, or refuses it with SiteError: any other exception is a traceback in front of the sysadmin;
  (c) names the file and says what is wrong in every problem of a SiteError, in text the terminal can print;
  (d) when it accepts the file, yields an inventory in which every string holding template syntax is tagged !unsafe.

Each file is checked in a forked worker process (Sandbox), so an alias bomb that never ends or eats all memory costs
one verdict and a restarted worker, not the whole test run. Shared by tests/unit/site/test_site_fuzz.py and
bench/site_fuzz.py.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
import multiprocessing
import os
import re
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import yaml
from helpers import ROOT

from provisioner.ansible_run.inventory import build_inventory, inventory_yaml
from provisioner.errors import SiteError
from provisioner.site.load import load_site

# The load's own CPU time is judged against LOAD_LIMIT: on a 2-core machine whose other core runs TCG guests,
# wall-clock time measures the neighbours too. A worker silent for HANG_AFTER seconds of wall time hangs.
LOAD_LIMIT = 2.0  # CPU seconds
GRACE = 8.0  # wall seconds beyond the limit before a silent worker counts as hung: a loaded machine, the pipe
MEMORY_CAP = 2 * 1024**3  # bytes a worker may add to what it had when forked; beyond that allocations fail
TODAY = dt.date(2026, 1, 1)  # waiver expiry and the like must not depend on the day the test runs
TEMPLATE_MARKERS = ("{{", "{%", "{#")
ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass(frozen=True)
class Verdict:
    """What happened to one file. `outcome` is accepted or rejected (both fine), or the name of a failure."""

    outcome: str
    detail: str = ""
    frame: str = ""  # the last frame of the traceback, where there is one
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in (ACCEPTED, REJECTED)

    @property
    def signature(self) -> tuple[str, str, str]:
        """Failures with the same signature are one bug: the same kind, exception type and place (for a hang, the
        file it was caught in: the line moves with every sample)."""
        if self.outcome == "hang":
            return (self.outcome, "", self.frame.split(":", 1)[0])
        return (self.outcome, self.detail.split(":", 1)[0], self.frame)

    def __str__(self) -> str:
        where = f" at {self.frame}" if self.frame else ""
        return f"{self.outcome}{where} after {self.seconds:.2f} s: {self.detail}"


def check_site_file(path: Path) -> Verdict:
    """Load `path` the way `provision validate` does and judge the outcome by properties (a) to (d)."""
    started = time.process_time()
    try:
        site = load_site(path, today=TODAY)
    except SiteError as exc:
        seconds = time.process_time() - started
        return _slow(seconds) or _judge_problems(exc, seconds)
    except Exception as exc:  # every other exception is the failure this fuzzer looks for
        return _crash("crash", exc, time.process_time() - started)
    seconds = time.process_time() - started
    slow = _slow(seconds)
    if slow:
        return slow
    try:
        inventory = inventory_yaml(build_inventory(site))
    except Exception as exc:
        return _crash("inventory-crash", exc, seconds)
    live = live_templates(inventory)
    if live:
        return Verdict("live-template", f"not tagged !unsafe: {live[0]!r}", seconds=seconds)
    return Verdict(ACCEPTED, seconds=seconds)


def _slow(seconds: float) -> Verdict | None:
    return Verdict("slow", f"took {seconds:.2f} s of CPU", seconds=seconds) if seconds > LOAD_LIMIT else None


def _crash(outcome: str, exc: BaseException, seconds: float) -> Verdict:
    frames = traceback.extract_tb(exc.__traceback__)
    frame = f"{_short(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return Verdict(outcome, f"{type(exc).__name__}: {str(exc)[:300]}", frame, seconds)


def _short(filename: str) -> str:
    """A frame's file relative to the project or to site-packages, so signatures read the same on every machine."""
    path = Path(filename)
    if path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    return filename.split("site-packages/", 1)[-1]


def _judge_problems(exc: SiteError, seconds: float) -> Verdict:
    faults = problem_faults(exc)
    if faults:
        return Verdict("bad-problem", faults[0], seconds=seconds)
    return Verdict(REJECTED, exc.problems[0].message[:200], seconds=seconds)


def problem_faults(exc: SiteError) -> list[str]:
    """What is wrong with the problems a SiteError reports: each needs a file, a message and printable text."""
    if not exc.problems:
        return ["SiteError without problems"]
    faults = []
    for problem in exc.problems:
        if not isinstance(problem.file, str) or not problem.file.strip():
            faults.append(f"problem without a file name: {problem!r}")
        if not isinstance(problem.message, str) or not problem.message.strip():
            faults.append(f"problem without a message: {problem!r}")
        if problem.line is not None and (not isinstance(problem.line, int) or problem.line < 1):
            faults.append(f"problem with line {problem.line!r}: {problem!r}")
        try:
            str(problem).encode("utf-8")
        except UnicodeError as error:  # the CLI writes it to a UTF-8 terminal: this would be a traceback there
            faults.append(f"problem text cannot be printed ({error}): {problem!r}"[:300])
    return faults


def live_templates(inventory: str) -> list[str]:
    """Strings (values or keys) of the inventory text that hold template syntax but are not tagged !unsafe."""
    root = yaml.compose(inventory, Loader=yaml.SafeLoader)
    live: list[str] = []
    pending = [root] if root is not None else []
    seen: set[int] = set()
    while pending:  # a loop, not recursion: the inventory may be as deep as the site lets it be
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if any(marker in node.value for marker in TEMPLATE_MARKERS) and node.tag != "!unsafe":
                live.append(node.value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            pending.extend(part for pair in node.value for part in pair)
    return live


# ---- the worker process ------------------------------------------------------------------------------------------


class Sandbox:
    """A forked worker that checks files one by one; it is killed and replaced when it hangs or dies."""

    def __init__(self, workdir: Path) -> None:
        self.site_file = workdir / "inventories" / "fuzz" / "site.yml"
        self.site_file.parent.mkdir(parents=True, exist_ok=True)
        self.stack_file = workdir / "hung-worker-stack.txt"  # where a hung worker's stack is dumped before the kill
        self._context = multiprocessing.get_context("fork")  # the worker starts with everything already imported
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.restarts = 0

    def check(self, raw: bytes) -> Verdict:
        conn = self._connection()
        started = time.monotonic()
        conn.send_bytes(raw)
        if not conn.poll(LOAD_LIMIT + GRACE):
            frame = self._hung_frame()
            self._discard_worker()
            hung = f"no verdict within {LOAD_LIMIT + GRACE:.0f} s"
            return Verdict("hang", hung, frame, time.monotonic() - started)
        try:
            verdict: Verdict = conn.recv()
        except EOFError:  # the worker died: a crash in C code, or an allocation over the cap Python could not catch
            process = self._process
            self._discard_worker()
            code = process.exitcode if process is not None else None
            return Verdict("died", f"worker exit code {code}", seconds=time.monotonic() - started)
        return verdict

    def _hung_frame(self) -> str:
        """Where the hung worker is: it dumps its stack on SIGUSR1 (faulthandler lists the innermost call first)."""
        if self._process is None or self._process.pid is None:
            return ""
        os.kill(self._process.pid, signal.SIGUSR1)  # the worker this sandbox started
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not self.stack_file.stat().st_size:
            time.sleep(0.02)
        time.sleep(0.05)  # let it finish writing
        match = re.search(r'File "(.+)", line (\d+) in (\S+)', self.stack_file.read_text(errors="replace"))
        return f"{_short(match[1])}:{match[2]} in {match[3]}" if match else ""

    def _discard_worker(self) -> None:
        self.close()
        self.restarts += 1

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()  # the worker this sandbox started, by its own handle
            self._process.join()
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> Connection:
        if self._conn is None or self._process is None or not self._process.is_alive():
            self.close()
            ours, theirs = self._context.Pipe()
            worker_args = (theirs, self.site_file, self.stack_file)
            self._process = self._context.Process(target=_serve, args=worker_args, daemon=True)
            self._process.start()
            theirs.close()
            self._conn = ours
        return self._conn


def _serve(conn: Connection, site_file: Path, stack_file: Path) -> None:
    _cap_memory()
    with stack_file.open("w") as stack:
        # in the worker's own thread, on request: faulthandler's timer thread, reading a running stack, can crash it
        faulthandler.register(signal.SIGUSR1, file=stack, all_threads=False)
        while True:
            try:
                raw = conn.recv_bytes()
            except EOFError:
                return
            site_file.write_bytes(raw)
            stack.seek(0)
            stack.truncate()
            conn.send(check_site_file(site_file))


def _cap_memory() -> None:
    """Limit the worker's address space, so an expanding alias bomb fails there instead of exhausting the machine."""
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY_CAP, resource.RLIM_INFINITY))
