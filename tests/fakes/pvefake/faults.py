"""Fault injection knobs, mutable at runtime through `fake.faults`.

Every random decision comes from one seeded RNG so a failing run can be replayed with the same
seed and the same request order. Injected API errors happen before any effect, never after, as a
real PVE that dies early (a lock timeout, a broken pmxcfs) would behave.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

INJECTED_FAILURE = "fake: injected failure"
INJECTED_TASK_FAILURE = "fake: injected task failure"


@dataclass
class Faults:
    seed: int = 0
    error_rate: float = 0.0  # fraction of API requests answered 500 `fake: injected failure`
    error_methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE"})  # which methods error_rate hits
    lock_timeout_rate: float = 0.0  # config writes/clones fail with the qemu-server flock timeout
    task_failure_rate: float = 0.0  # task workers fail with `fake: injected task failure`
    slow_tasks: float = 1.0  # multiplies every task duration
    task_jitter: float = 0.0  # +- fraction of randomness on task durations
    task_invisible_seconds: float = 0.0  # task status/log answer 400 `no such task` this long after creation
    auth_delay: float = 0.0  # seconds to wait before a 401 (real PVE waits 3 s)
    # VMs whose guest ignores the shutdown request (no agent, ACPI ignored): a shutdown waits its whole timeout,
    # then fails with "VM quit/powerdown failed - got timeout" (or stops the VM with forceStop)
    ignore_shutdown: set[int] = field(default_factory=set)
    _rng: random.Random = field(init=False, repr=False)
    _guard: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _next_failures: deque[tuple[str | None, str]] = field(init=False, repr=False, default_factory=deque)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def reseed(self, seed: int) -> None:
        with self._guard:
            self.seed = seed
            self._rng = random.Random(seed)

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._guard:
            return self._rng.random() < rate

    def jitter(self) -> float:
        if self.task_jitter <= 0:
            return 1.0
        with self._guard:
            return 1.0 + self._rng.uniform(-self.task_jitter, self.task_jitter)

    def fail_next_task(self, task_type: str | None = None, message: str = INJECTED_TASK_FAILURE) -> None:
        """Make the next task of `task_type` (any type if None) fail with `message`."""
        with self._guard:
            self._next_failures.append((task_type, message))

    def take_task_failure(self, task_type: str) -> str | None:
        """Called by each task worker: the failure message to apply, if any."""
        with self._guard:
            for entry in list(self._next_failures):
                if entry[0] in (None, task_type):
                    self._next_failures.remove(entry)
                    return entry[1]
        if self.roll(self.task_failure_rate):
            return INJECTED_TASK_FAILURE
        return None

    def pending_task_failures(self) -> list[tuple[str | None, str]]:
        with self._guard:
            return list(self._next_failures)

    def clear(self) -> None:
        """Back to a healthy cluster (keeps the seed)."""
        with self._guard:
            self._next_failures.clear()
        self.error_rate = 0.0
        self.lock_timeout_rate = 0.0
        self.task_failure_rate = 0.0
        self.slow_tasks = 1.0
        self.task_jitter = 0.0
        self.task_invisible_seconds = 0.0
        self.auth_delay = 0.0


def lock_timeout_message(vmid: int) -> str:
    return f"can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
