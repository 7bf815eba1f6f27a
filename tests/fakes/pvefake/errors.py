"""Error values raised by handlers and turned into PVE-shaped HTTP responses.

PVE reports every failure through the HTTP status line: the reason phrase is the first line of the
`die` message (proxmoxer shows `resp.reason` as `ResourceException.content`), and the JSON body is
`{"data": null, "message": "<msg>\\n", "errors": {...}}`. Handlers raise `ApiError` and the HTTP
layer renders it.
"""

from __future__ import annotations

PARAM_FAILED = "Parameter verification failed."


class ApiError(Exception):
    """A failure with an HTTP status, a PVE message and optional per-parameter errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def die(message: str) -> ApiError:
    """A plain Perl `die` inside an API handler: HTTP 500 with the message as reason phrase."""
    return ApiError(500, message)


def param_error(errors: dict[str, str]) -> ApiError:
    """PVE's `raise_param_exc`: HTTP 400 `Parameter verification failed.` plus per-parameter errors."""
    return ApiError(400, PARAM_FAILED, dict(errors))


def permission_denied(what: str | None = None) -> ApiError:
    """PVE's `raise_perm_exc`: HTTP 403 `Permission check failed (<path>, <priv>)`."""
    return ApiError(403, f"Permission check failed ({what})" if what else "Permission check failed")


def not_implemented(method: str, path: str) -> ApiError:
    return ApiError(501, f"Method '{method} {path}' not implemented")


class TaskError(Exception):
    """Raised inside a task worker; the text becomes the task's exitstatus (`TASK ERROR: <text>`)."""
