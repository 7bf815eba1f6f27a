"""Request recording: in memory for assertions, and optionally to a JSON-lines file.

If `PVEFAKE_RECORD` names a file, every request is appended as one JSON line
`{"method", "path", "route", "params", "status", "schema"}`. The file is opened with O_APPEND and each
line is a single write(), so concurrent fakes in several processes (pytest-xdist) interleave whole
lines. A contract test replays the lines against both schema versions. Secret values (passwords)
are masked in the file; in memory they stay as sent.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

RECORD_ENV = "PVEFAKE_RECORD"
SECRET_KEYS = frozenset({"password", "cipassword", "new-password", "confirmation-password"})
MASK = "**********"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # concrete, without /api2/json
    route: str  # the schema template; "" when no route matched (e.g. a 501)
    params: dict[str, Any]  # URI + query/body parameters, merged
    status: int
    reason: str
    duration: float


class Recorder:
    def __init__(self, schema_version: str) -> None:
        self.schema_version = schema_version
        self._guard = threading.Lock()
        self.requests: list[RecordedRequest] = []

    def record(self, entry: RecordedRequest) -> None:
        with self._guard:
            self.requests.append(entry)
        target = os.environ.get(RECORD_ENV)
        if target:
            self._append_line(target, entry)

    def _append_line(self, target: str, entry: RecordedRequest) -> None:
        params = {k: (MASK if k in SECRET_KEYS else v) for k, v in entry.params.items()}
        line = json.dumps(
            {
                "method": entry.method,
                "path": entry.path,
                "route": entry.route,
                "params": params,
                "status": entry.status,
                "schema": self.schema_version,
            },
            sort_keys=True,
        )
        data = (line + "\n").encode()
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def snapshot(self) -> list[RecordedRequest]:
        with self._guard:
            return list(self.requests)

    def route_counts(self) -> Counter[tuple[str, str]]:
        with self._guard:
            return Counter((r.method, r.route) for r in self.requests)

    def clear(self) -> None:
        with self._guard:
            self.requests.clear()
