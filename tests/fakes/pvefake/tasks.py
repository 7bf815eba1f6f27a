"""PVE worker tasks: UPIDs, background workers, status and log.

A UPID is `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:` (pid, pstart, starttime as
8 upper-case hex digits, trailing colon, 9 colon-separated fields). The POST that starts a task
returns the UPID with HTTP 200 even if the worker later fails: failures only show in `exitstatus`
(`OK`, `WARNINGS: <n>` or the error text) and in the log's last line (`TASK OK` / `TASK ERROR: ...`).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import TaskError
from .faults import Faults

log = logging.getLogger(__name__)

UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):"
    r"([^:\s/]+):([^:\s/]*):([^:\s/]+):$"
)


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str  # auth id: user@realm or user@realm!token
    created: float  # monotonic, for the invisibility window
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    lines: list[str] = field(default_factory=list)
    warnings: int = 0
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def log(self, line: str) -> None:
        self.lines.append(line)

    def warn(self, line: str) -> None:
        self.warnings += 1
        self.lines.append(f"WARN: {line}")

    def status_dict(self) -> dict[str, Any]:
        user, _, token = self.user.partition("!")
        out: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": user,
            "status": self.status,
        }
        if token:
            out["tokenid"] = token
        if self.status == "stopped":
            out["exitstatus"] = self.exitstatus
        return out

    def list_entry(self) -> dict[str, Any]:
        """As a task index lists it: the user and the token apart, as in the status (pve-manager's Tasks.pm
        converts both with convert_token_task)."""
        out = self.status_dict()
        out.pop("exitstatus", None)
        if self.status == "stopped":
            out["status"] = self.exitstatus
            out["endtime"] = self.endtime
        else:
            del out["status"]
        return out


def parse_upid(upid: str) -> dict[str, Any] | None:
    m = UPID_RE.match(upid)
    if m is None:
        return None
    return {"node": m.group(1), "type": m.group(6), "id": m.group(7), "user": m.group(8)}


WorkFn = Callable[[Task], None]
FailFn = Callable[[Task, str], None]


class TaskManager:
    """Creates tasks and runs their workers in daemon threads."""

    def __init__(self, node: str, faults: Faults, task_seconds: float, tasks: dict[str, Task]) -> None:
        self.node = node
        self.faults = faults
        self.task_seconds = task_seconds
        self.tasks = tasks  # shared with State so tests can inspect them
        self._pids = itertools.count((os.getpid() * 7919) % 0x3FFFFF + 0x1000)
        self._pstart = int(time.monotonic() * 100) & 0xFFFFFFF
        self._guard = threading.Lock()
        self._threads: list[threading.Thread] = []

    def create(self, task_type: str, task_id: str, user: str, node: str | None = None) -> Task:
        """`node`: the cluster member the task runs on (a guest's own node); default the fake's node."""
        where = node or self.node
        with self._guard:
            pid = next(self._pids)
            starttime = int(time.time())
            upid = f"UPID:{where}:{pid:08X}:{self._pstart:08X}:{starttime:08X}:{task_type}:{task_id}:{user}:"
            task = Task(upid, where, pid, self._pstart, starttime, task_type, task_id, user, time.monotonic())
            self.tasks[upid] = task
            return task

    def spawn(
        self,
        task_type: str,
        task_id: str,
        user: str,
        work: WorkFn,
        *,
        on_fail: FailFn | None = None,
        error_prefix: str = "",
        seconds: float | None = None,
        node: str | None = None,
    ) -> str:
        """Start a worker; returns its UPID at once. `work` raises TaskError (or anything) to fail;
        `on_fail` undoes half-done effects (a failed clone removes the new VM) before the task stops."""
        task = self.create(task_type, task_id, user, node)
        duration = (self.task_seconds if seconds is None else seconds) * self.faults.slow_tasks * self.faults.jitter()
        thread = threading.Thread(
            target=self._run,
            args=(task, work, on_fail, error_prefix, max(0.0, duration)),
            name=f"pvefake-{task_type}-{task.pid:X}",
            daemon=True,
        )
        with self._guard:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return task.upid

    def _run(self, task: Task, work: WorkFn, on_fail: FailFn | None, prefix: str, duration: float) -> None:
        time.sleep(duration)
        error: str | None = self.faults.take_task_failure(task.type)
        if error is None:
            try:
                work(task)
            except TaskError as exc:
                error = str(exc)
            except Exception as exc:  # the realizer may raise anything; PVE shows the die text
                log.debug("task %s failed", task.upid, exc_info=True)
                error = str(exc) or exc.__class__.__name__
        if error is not None:
            message = f"{prefix}{error}"
            if on_fail is not None:
                try:
                    on_fail(task, message)
                except Exception:  # cleanup must not hide the original error
                    log.exception("cleanup of failed task %s raised", task.upid)
            self.finish(task, message)
        else:
            self.finish(task, None)

    def finish(self, task: Task, error: str | None) -> None:
        if error is not None:
            task.log(f"TASK ERROR: {error}")
            task.exitstatus = error.splitlines()[0] if error else "unexpected status"
        elif task.warnings:
            task.log(f"TASK WARNINGS: {task.warnings}")
            task.exitstatus = f"WARNINGS: {task.warnings}"
        else:
            task.log("TASK OK")
            task.exitstatus = "OK"
        task.endtime = int(time.time())
        task.status = "stopped"
        task.done.set()

    def wait_all(self, timeout: float = 10.0) -> bool:
        """Wait for every worker started so far (tests and stop())."""
        deadline = time.monotonic() + timeout
        with self._guard:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return all(not t.is_alive() for t in threads)
