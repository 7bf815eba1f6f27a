"""`provision data …`: test data (DATA-1..3): synthetic seeding, authorised anonymised refresh, the scan."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from provisioner.cli.common import EnvOpt, JsonOpt, SiteArg, emit, failed_if, handled, load, out, public
from provisioner.cli.release_commands import SignatureOpt, SignKeyOpt, SiteOpt, StatementOpt, say_signed, signed
from provisioner.engine import test_data
from provisioner.engine.releasing import open_book

app = typer.Typer(
    help="Test data (DATA-1..3): synthetic seeding, authorised anonymised refresh, the personal-data scan.",
    no_args_is_help=True,
)
ONE_TRANSACTION = "each data operation is one transaction; run it again"


@app.command("seed")
@handled(interrupted=ONE_TRANSACTION)
def data_seed(
    site: SiteArg = None,
    env: EnvOpt = "dev",
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Faker seed (default: test_data.seed)")] = None,
    customers: Annotated[
        int | None, typer.Option("--customers", min=1, max=1_000_000, help="default: test_data.customers")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fill an environment's database with reproducible synthetic data and record its provenance."""
    loaded = load(site)
    record = test_data.seed(loaded, env, seed, customers)
    if as_json:
        emit(public(record))
        return
    tables = ", ".join(f"{t['name']} ({t['rows']} rows)" for t in record["tables"])
    out.print(f"[green]seeded[/green] {env} with synthetic data (seed {record['seed']}): {tables}", highlight=False)
    out.print(f"provenance record: {record['file']}", highlight=False)


@app.command("refresh")
@handled(interrupted=ONE_TRANSACTION)
def data_refresh(
    site: SiteArg = None,
    from_env: Annotated[str, typer.Option("--from", help="the production environment")] = "prod",
    to_env: Annotated[str, typer.Option("--to", help="the test environment (data rule: anonymised)")] = "test",
    authorisation: Annotated[
        str | None, typer.Option("--authorisation", metavar="REF", help="id of an entry of test_data.authorisations")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy production data into test through the anonymiser, under a recorded authorisation."""
    loaded = load(site)
    record = test_data.refresh(loaded, from_env, to_env, authorisation)
    if as_json:
        emit(public(record))
        return
    auth = record["authorisation"]
    out.print(
        f"[green]refreshed[/green] {to_env} from {from_env} through the anonymiser under '{auth['id']}' "
        f"(requested by {auth['requester']}, approved by {auth['approver']}); scrub by {auth['scrub_by']}",
        highlight=False,
    )
    out.print(f"provenance record: {record['file']}", highlight=False)


@app.command("authorise")
@handled()
def data_authorise(
    authorisation: Annotated[str, typer.Argument(metavar="REF", help="id of an entry of test_data.authorisations")],
    person: Annotated[str, typer.Option("--as", help="its approver, as the site file names them")],
    site: SiteOpt = None,
    sign_key: SignKeyOpt = None,
    statement: StatementOpt = None,
    signature: SignatureOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a refresh authorisation as its approver (DATA-3): `data refresh` copies nothing until then."""
    book = open_book(load(site))
    entry = signed(lambda how: book.authorise_refresh(authorisation, person, how), sign_key, statement, signature)
    say_signed(entry, as_json, {"authorisation": authorisation},
               f"{person} had already signed {authorisation} as it stands; nothing recorded",
               f"authorisation {authorisation} signed by {person}")  # fmt: skip


@app.command("scrub")
@handled(interrupted=ONE_TRANSACTION)
def data_scrub(site: SiteArg = None, *, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Remove every table of an environment's database (after a refresh: before its scrub deadline)."""
    loaded = load(site)
    record = test_data.scrub(loaded, env)
    if as_json:
        emit(public(record))
        return
    out.print(f"[green]scrubbed[/green] {env}; record: {record['file']}", highlight=False)


@app.command("scan")
@handled(interrupted=ONE_TRANSACTION)
def data_scan(
    site: SiteArg = None,
    *,
    env: EnvOpt,
    sample_rows: Annotated[
        int | None, typer.Option("--sample-rows", min=10, max=10_000_000, help="rows read per table")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Look for personal data in an environment's databases and data folders. Exit 1 on any finding."""
    loaded = load(site)
    report = test_data.scan(loaded, env, sample_rows)
    if as_json:
        emit(public(report))
    else:
        scanned = sum(s.get("rows_scanned", 0) for s in report["sources"])
        out.print(
            f"scanned {len(report['sources'])} table(s)/file(s), {scanned} row(s)/line(s) in {env}; "
            f"{report['production_fingerprints']} production fingerprints",
            highlight=False,
        )
        if report["findings"]:
            table = Table(title=f"Personal data found in {env} (counts only)")
            for column in ("host", "table / file", "column", "detector", "count"):
                table.add_column(column)
            for f in report["findings"]:
                table.add_row(f["host"], f["source"], f["column"], f["detector"], str(f["count"]))
            out.print(table)
        else:
            out.print("[green]clean[/green]: no personal data found", highlight=False)
        out.print(f"scan record: {report['file']}", highlight=False)
    failed_if(bool(report["findings"]))
