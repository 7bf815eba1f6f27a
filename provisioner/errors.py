"""Errors the tool reports to people, and the exit codes it documents."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation ran and failed (a host failed, a backend error)
    INVALID = 2  # bad input: site file or command-line arguments; nothing was touched
    REFUSED = 3  # refused by policy (production needs confirmation); nothing was touched
    INTERRUPTED = 130  # stopped by SIGINT; safe to re-run


def shown(value: str) -> str:
    """A value from the command line as a message shows it: as typed, or quoted when it is empty or holds
    spaces or control characters (so a stray newline cannot forge a line of output)."""
    plain = value and value.isprintable() and not any(c.isspace() or c in "'\"" for c in value)
    return value if plain else repr(value)


class ProvisionError(Exception):
    """An error with a message written for the sysadmin, and an exit code."""

    exit_code: ExitCode = ExitCode.FAILED


class RefusedError(ProvisionError):
    exit_code = ExitCode.REFUSED


class BackendError(ProvisionError):
    exit_code = ExitCode.FAILED


class InputError(ProvisionError):
    """Bad input found before anything was touched: a setting the hypervisor cannot honour, a bad argument."""

    exit_code = ExitCode.INVALID


@dataclass(frozen=True)
class SiteProblem:
    """One problem in a site file: where it is, which key, and what is allowed."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class SiteError(ProvisionError):
    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[SiteProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
