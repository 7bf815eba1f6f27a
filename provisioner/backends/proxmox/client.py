"""A proxmoxer connection that knows Proxmox's habits: UPID tasks, transient lock errors, 500 for 'not found'.

Every call goes through `PveClient.call`, which retries what is worth retrying (connection errors, 5xx answers)
with a bounded, growing backoff, and turns what is left into a `BackendError` a sysadmin can act on.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.errors import BackendError, InputError, ProvisionError
from provisioner.site.model import ProxmoxSettings

ATTEMPTS = 6
BACKOFF_FIRST = 0.2  # seconds; doubles per attempt, capped
BACKOFF_CAP = 3.0
POLL_FIRST = 0.05
POLL_CAP = 1.0
# A task can be invisible for a moment right after its POST returned (the status file is written by the worker).
UNSEEN_TASK_GRACE = 10.0
CONNECT_TIMEOUT = 10.0  # seconds to reach an API endpoint before the next one is tried
READ_TIMEOUT = 30.0


class PveError(BackendError):
    """An answer from Proxmox that the backend could not turn into success."""

    def __init__(self, message: str, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


def token_secret(settings: ProxmoxSettings, site_dir: Path) -> str:
    """The API token secret, from a file of mode 0600 or from an environment variable; never from the site file."""
    token = settings.token
    if token.file:
        path = Path(token.file)
        if not path.is_absolute():
            path = site_dir / path
        if not path.is_file():
            raise InputError(f"backend.token.file: {path} does not exist; it must hold the secret of {token.id}")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise InputError(
                f"backend.token.file: {path} is mode {mode:04o}; a token secret file must be mode 0600 "
                f"(chmod 600 {path})"
            )
        secret = path.read_text().strip()
        if not secret:
            raise InputError(f"backend.token.file: {path} is empty")
        return secret
    if token.env:
        secret = os.environ.get(token.env, "").strip()
        if secret:
            return secret
        raise InputError(
            f"backend.token: the secret of API token {token.id} is read from the environment variable {token.env}, "
            "which is not set; export it, or name a file of mode 0600 in backend.token.file"
        )
    raise InputError("backend.token: give either `env` or `file` for the token secret")


class ConnectedSettings(ProxmoxSettings):
    """The site's Proxmox settings as one client uses them: `host` is the API endpoint it is connected to."""

    host: str  # one endpoint of the site's list


class PveClient:
    """One authenticated connection. Not shared between threads: use `fork()` for a worker thread.

    With several API endpoints (`backend.host` a list), it connects to the first that answers `GET /version`; a
    call that cannot reach its endpoint (a connection error, not an HTTP error answer) makes it move to the next
    endpoint that answers, and the call is retried there."""

    settings: ConnectedSettings

    def __init__(
        self,
        settings: ProxmoxSettings,
        secret: str,
        on_call: Callable[[str, str], None] | None = None,
        first: int = 0,
    ):
        self.site_settings = settings
        self.endpoints = settings.endpoints
        self._secret = secret
        self.node = settings.node
        self.on_call = on_call
        self._index = first % len(self.endpoints)
        self._use(self._index)
        if len(self.endpoints) > 1:
            self._fail_over(None, probe_current=True)

    def _use(self, index: int) -> None:
        self._index = index
        self.settings = ConnectedSettings.model_construct(
            _fields_set=self.site_settings.model_fields_set,
            **{**dict(self.site_settings), "host": self.endpoints[index]},
        )
        self._api = self._connect()

    def _connect(self) -> Any:
        try:
            from proxmoxer import ProxmoxAPI
        except ImportError as exc:
            raise ProvisionError(
                "the Proxmox backend needs proxmoxer: pip install 'provisioner[proxmox]' (make setup does)"
            ) from exc
        user, token_name = self.settings.token.id.split("!", 1)
        verify: bool | str = self.settings.verify_tls
        if self.settings.ca_file:
            verify = self.settings.ca_file
        if verify is False:
            import urllib3

            # The sysadmin chose verify_tls: false in the site file; do not repeat the warning on every call.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        return ProxmoxAPI(
            self.settings.host,
            user=user,
            token_name=token_name,
            token_value=self._secret,
            verify_ssl=verify,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )

    def _fail_over(self, failure: str | None, probe_current: bool = False) -> None:
        """Move to the first endpoint, from the current one on (or after it), that answers `GET /version`; an
        HTTP error answer counts as an answer (the call then says what is wrong). None answering is a PveError
        naming every endpoint tried and why."""
        count = len(self.endpoints)
        tried: list[str] = []
        if failure is not None:
            tried.append(f"{self.endpoints[self._index]} ({failure})")
        origin = self._index
        for step in range(0 if probe_current else 1, count):
            index = (origin + step) % count
            self._use(index)
            problem = self._probe()
            if problem is None:
                return
            tried.append(f"{self.endpoints[index]} ({problem})")
        raise PveError("no Proxmox API endpoint answers: " + "; ".join(tried))

    def _probe(self) -> str | None:
        """Why the current endpoint cannot be used; None when it answers."""
        import requests
        from proxmoxer.core import ResourceException

        if self.on_call:
            self.on_call("GET", "version")
        try:
            self._api("version").get()
        except ResourceException:
            return None  # it answers; the error is the call's to report
        except requests.ConnectionError as exc:
            return _short(exc)
        return None

    def fork(self) -> PveClient:
        """A client of its own for a worker thread, starting at the endpoint this one uses."""
        return PveClient(self.site_settings, self._secret, self.on_call, first=self._index)

    # ---- plain calls ---------------------------------------------------------------------------
    def get(self, path: str, /, **params: Any) -> Any:
        return self.call("GET", path, params)

    def post(self, path: str, /, **params: Any) -> Any:
        return self.call("POST", path, params)

    def put(self, path: str, /, **params: Any) -> Any:
        return self.call("PUT", path, params)

    def delete(self, path: str, /, **params: Any) -> Any:
        return self.call("DELETE", path, params)

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        settle: Callable[[], bool] | None = None,
        retry: bool = True,
    ) -> Any:
        """One API call. On a transient failure it retries; `settle` says whether the effect happened anyway
        (a create that answered 500 but whose object exists), which counts as success."""
        last: PveError | None = None
        attempts = ATTEMPTS if retry else 1
        for attempt in range(attempts):
            try:
                return self._once(method, path, params)
            except PveError as exc:
                if not _transient(exc):
                    # 'already exists' after a lost answer, or another apply was faster: settled all the same
                    if settle is not None and exc.status is not None and exc.status >= 500 and settle():
                        return None
                    raise
                last = exc
            if settle is not None and settle():
                return None
            if attempt + 1 < attempts:
                time.sleep(min(BACKOFF_CAP, BACKOFF_FIRST * 2**attempt))
        assert last is not None
        if attempts == 1:
            raise last
        raise PveError(
            f"Proxmox kept failing on {method} {path} after {attempts} attempts: {last}", last.status, last.reason
        )

    def _once(self, method: str, path: str, params: dict[str, Any]) -> Any:
        import requests
        from proxmoxer.core import ResourceException

        if self.on_call:
            self.on_call(method, path)
        resource = self._api(path.strip("/"))
        clean = {k: _wire(v) for k, v in params.items() if v is not None}
        try:
            return getattr(resource, method.lower())(**clean)
        except ResourceException as exc:
            reason = str(exc.content or exc.status_message)
            detail = f" {exc.errors}" if exc.errors else ""
            raise PveError(f"{method} {path}: {exc.status_code} {reason}{detail}", exc.status_code, reason) from exc
        except requests.ConnectionError as exc:
            # the endpoint is down or unreachable: the next one that answers takes the retry
            where = self.settings.host
            if len(self.endpoints) > 1:
                self._fail_over(_short(exc))
                where += f" (now using {self.settings.host})"
            raise PveError(f"{method} {path}: cannot reach {where}: {exc}") from exc
        except requests.Timeout as exc:  # it was reached but did not answer in time: retried there
            raise PveError(f"{method} {path}: no answer from {self.settings.host}: {exc}") from exc

    # ---- tasks ---------------------------------------------------------------------------------
    def wait(self, upid: str, what: str, timeout: float | None = None) -> str:
        """Poll a UPID to its end. Returns the exit status ('OK' or 'WARNINGS: n'); anything else raises with
        the end of the task log in the message. A timeout is an error, never a silent None."""
        if not isinstance(upid, str) or not upid.startswith("UPID:"):
            raise PveError(f"{what}: Proxmox answered {upid!r} where a task id (UPID) was expected")
        node = upid.split(":")[1]
        limit = timeout if timeout is not None else self.settings.task_timeout
        started = time.monotonic()
        delay = POLL_FIRST
        while True:
            try:
                status = self.call("GET", f"nodes/{node}/tasks/{upid}/status", {})
            except PveError as exc:
                if exc.status == 400 and time.monotonic() - started < UNSEEN_TASK_GRACE:
                    status = {"status": "unseen"}
                else:
                    raise
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status == "OK" or exit_status.startswith("WARNINGS"):
                    return exit_status
                raise PveError(f"{what} failed: {exit_status or 'no exit status'}{self._log_tail(node, upid)}")
            if time.monotonic() - started > limit:
                raise PveError(
                    f"{what}: task {upid} still running after {limit:.0f}s (backend.task_timeout); "
                    "it may finish later, re-run apply to continue"
                )
            time.sleep(delay)
            delay = min(POLL_CAP, delay * 1.6)

    def _log_tail(self, node: str, upid: str) -> str:
        try:
            lines = self.call("GET", f"nodes/{node}/tasks/{upid}/log", {"limit": 20}, retry=False) or []
        except PveError:
            return ""
        text = "; ".join(str(line.get("t", "")) for line in lines[-5:] if line.get("t"))
        return f" (task log: {text})" if text else ""

    def run_task(self, method: str, path: str, what: str, *, retry: bool = True, **params: Any) -> str:
        """Start a task and wait for it. A task that fails on a lock timeout is started again (bounded), unless
        `retry` is off (a shutdown's "VM quit/powerdown failed - got timeout" is an answer, not a lock)."""
        last: PveError | None = None
        for attempt in range(ATTEMPTS):
            upid = self.call(method, path, params)
            try:
                return self.wait(upid, what)
            except PveError as exc:
                if not retry or "got timeout" not in str(exc):
                    raise
                last = exc
            time.sleep(min(BACKOFF_CAP, BACKOFF_FIRST * 2**attempt))
        assert last is not None
        raise last


_TRANSIENT_500 = (
    "got timeout",
    "lock request timeout",
    "can't lock file",
    "is locked",
    "try again",
)
# 500s that state a fact about the request or the state; repeating the call cannot change them. qemu-server and
# pve-storage say so in these words: `Linked clone feature is not supported for '<volume>' (scsi0)`, `storage 'x'
# does not support vm images`, `storage 'x' is disabled`, `storage 'x' is not available on node 'y'`, `can't clone
# to non-shared storage`, `unable to remove VM 100 - used in HA resources`, `service 'vm:100' in error state`.
_PERMANENT_500 = (
    "does not exist",
    "already exists",
    "already defined",
    "already running",
    "protection mode",
    "not empty",
    "is used by",
    "invalid",
    "not allowed",
    "not supported",
    "does not support",
    "is disabled",
    "is not available on node",
    "can't clone",
    "used in ha resources",
    "in error state",
    "not ha managed",
)


def _transient(exc: PveError) -> bool:
    if exc.status is None:  # connection error, timeout
        return True
    if exc.status < 500 or exc.status == 501:
        return False
    text = exc.reason.lower()
    if any(marker in text for marker in _TRANSIENT_500):
        return True
    return not any(marker in text for marker in _PERMANENT_500)


def _short(exc: Exception) -> str:
    """A connection error in a few words: requests' texts nest the whole urllib3 chain."""
    text = str(exc)
    for marker in ("Connection refused", "No route to host", "timed out", "Name or service not known",
                   "Network is unreachable", "Connection reset"):  # fmt: skip
        if marker in text:
            return marker.lower()
    return text[:160]


def _wire(value: Any) -> Any:
    """Proxmox takes booleans only as 0/1: a Python True would be sent as 'True' and refused."""
    if isinstance(value, bool):
        return int(value)
    return value


class CallCounter:
    """Counts calls per (method, path shape), for the plan benchmark and the O(1) test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> None:
        with self._lock:
            self.calls.append((method, path))
