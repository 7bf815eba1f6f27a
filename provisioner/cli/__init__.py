"""`provision`: a thin command line over the engine (provisioner.engine), one module per command group.

Exit codes: 0 done; 1 the operation failed; 2 bad input (site file or arguments), nothing touched;
3 refused by policy (production needs confirmation), nothing touched; 130 interrupted, safe to re-run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from provisioner import __version__
from provisioner.cli import (
    data_commands,
    evidence_commands,
    machine_commands,
    release_commands,
    site_commands,
    waiver_commands,
    watch_commands,
)
from provisioner.cli.common import out

app = typer.Typer(
    help="Separate development, test and production environments on your own hypervisors, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (site_commands.app, evidence_commands.app, machine_commands.app):
    app.registered_commands.extend(group.registered_commands)
app.add_typer(machine_commands.image_app, name="image")
app.add_typer(data_commands.app, name="data")
app.add_typer(release_commands.app, name="release")
app.add_typer(waiver_commands.app, name="waiver")
app.add_typer(watch_commands.app, name="watch")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
) -> None:
    if version:
        out.print(f"provisioner {__version__}")
        raise typer.Exit(0)


def main() -> None:
    app()
