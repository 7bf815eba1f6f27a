"""What every command shares: consoles, options, JSON output, and the one place errors become exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from provisioner.engine import operations
from provisioner.engine.operations import LoadedSite
from provisioner.errors import ExitCode, ProvisionError, SiteError

# No emoji codes: a message such as "site.yml:100:" must not become "site.yml💯".
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

SiteArg = Annotated[
    str | None,
    typer.Argument(help="site name under inventories/, a site directory, or a site.yml path", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
ConfirmOpt = Annotated[
    str | None, typer.Option("--confirm-prod", metavar="SITE", help="confirm changes to production by naming the site")
]
EnvOpt = Annotated[str, typer.Option("--env", help="the environment (by name)")]

Command = TypeVar("Command", bound=Callable[..., Any])


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(exc: ProvisionError, as_json: bool) -> None:
    if as_json:
        payload: dict[str, Any] = {"error": str(exc), "exit_code": int(exc.exit_code)}
        if isinstance(exc, SiteError):
            payload["problems"] = [p.__dict__ for p in exc.problems]
        emit(payload)
    label = (
        "invalid" if exc.exit_code == ExitCode.INVALID else "refused" if exc.exit_code == ExitCode.REFUSED else "error"
    )
    err.print(f"[bold red]{label}:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(exc.exit_code))


def handled(interrupted: str | None = None) -> Callable[[Command], Command]:
    """The one error handler: a ProvisionError becomes its exit code and message (JSON with --json); Ctrl-C, where
    the command says how to resume, exit 130 with that advice."""

    def wrap(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except ProvisionError as exc:
                fail(exc, bool(kwargs.get("as_json", False)))
            except KeyboardInterrupt:
                if interrupted is None:
                    raise
                err.print(f"[yellow]interrupted[/yellow]: {interrupted}")
                raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

        return run  # type: ignore[return-value]

    return wrap


def failed_if(failed: bool) -> None:
    """Exit 1 (the operation ran and found or left something wrong) when `failed`."""
    if failed:
        raise typer.Exit(int(ExitCode.FAILED))


def load(site: str | None) -> LoadedSite:
    return operations.load(site)


def public(record: dict[str, Any], hidden: Callable[[str], bool] = lambda key: key.startswith("_")) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not hidden(k)}
