"""Running host commands with errors that say what failed."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from provisioner.controller.needs import program
from provisioner.errors import BackendError


def run(
    cmd: Sequence[str], *, check: bool = True, input_text: str | None = None, timeout: float | None = 300
) -> subprocess.CompletedProcess[str]:
    need = program(cmd[0])  # refuses a program the registry of host needs does not list
    try:
        result = subprocess.run(
            list(cmd), capture_output=True, text=True, input=input_text, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise BackendError(
            f"command not found: {cmd[0]} (package {need.package}; `provision doctor` lists what is missing)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise BackendError(f"timed out after {timeout}s: {shlex.join(cmd)}") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise BackendError(f"`{shlex.join(cmd)}` failed (exit {result.returncode}): " + " / ".join(detail))
    return result


def start_daemon(cmd: Sequence[str], log: Path) -> int:
    """Start a long-running program detached from this process (its own session, stdin closed, output appended to
    `log`) and return its pid. Registered programs only, like `run`."""
    need = program(cmd[0])
    with open(log, "ab") as output:
        try:
            process = subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        except FileNotFoundError as exc:
            raise BackendError(
                f"command not found: {cmd[0]} (package {need.package}; `provision doctor` lists what is missing)"
            ) from exc
    return process.pid
