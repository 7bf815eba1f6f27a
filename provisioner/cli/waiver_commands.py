"""`provision waiver …`: an exception (ACC-7) takes effect once its approver has signed it with their own key."""

from __future__ import annotations

from typing import Annotated

import typer

from provisioner.cli.common import JsonOpt, handled, load
from provisioner.cli.release_commands import SignatureOpt, SignKeyOpt, SiteOpt, StatementOpt, say_signed, signed
from provisioner.engine.releasing import open_book

app = typer.Typer(help="Waivers (ACC-7): recorded exceptions, signed by their approver.", no_args_is_help=True)


@app.command("approve")
@handled()
def approve(
    waiver: Annotated[str, typer.Argument(help="waiver id, as the site file's waivers: list it")],
    person: Annotated[str, typer.Option("--as", help="the waiver's approver, as the site file names them")],
    site: SiteOpt = None,
    sign_key: SignKeyOpt = None,
    statement: StatementOpt = None,
    signature: SignatureOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a waiver as its approver: until then it waives nothing and ACC-7 fails."""
    book = open_book(load(site))
    entry = signed(lambda how: book.approve_waiver(waiver, person, how), sign_key, statement, signature)
    say_signed(entry, as_json, {"waiver": waiver},
               f"{person} had already signed waiver {waiver} as it stands; nothing recorded",
               f"waiver {waiver} signed by {person}")  # fmt: skip
