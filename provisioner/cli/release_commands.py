"""`provision release …`: the path to live (CHG-1..4), a thin layer over the engine's release book."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.common import JsonOpt, emit, failed_if, handled, load, out
from provisioner.engine.releasing import (
    Release,
    ReleaseBook,
    Signing,
    Unsigned,
    describe,
    open_book,
    release_path,
    require_release,
)

app = typer.Typer(
    help="Releases: one-way Dev -> Test -> Prod, four-eyes approval, a signed ledger.", no_args_is_help=True
)

SiteOpt = Annotated[
    str | None,
    typer.Option("--site", "-s", help="site name, directory or site.yml (default: $PROVISION_SITE or the only site)"),
]
ReleaseArg = Annotated[str, typer.Argument(help="release id, such as r1 (see `provision release log`)")]
SignKeyOpt = Annotated[
    Path | None,
    typer.Option("--sign-key", help="sign here: your private key, or your .pub key with its private half in ssh-agent"),
]
StatementOpt = Annotated[
    Path | None, typer.Option("--statement", help="the statement you signed on your own machine (see below)")
]
SignatureOpt = Annotated[Path | None, typer.Option("--signature", help="its signature: ssh-keygen -Y sign output")]


def signed(action: Callable[[Signing], Any], key: Path | None, statement: Path | None, signature: Path | None) -> Any:
    """Run a decision with the person's signature; without one, print the statement to sign (stdout) and refuse."""
    try:
        return action(Signing(key=key, statement=statement, signature=signature))
    except Unsigned as unsigned:
        sys.stdout.write(unsigned.statement.text())
        sys.stdout.flush()
        raise


def say_signed(
    entry: dict[str, Any] | None, as_json: bool, unrecorded: dict[str, Any], already: str, done: str
) -> None:
    """What a signed decision answers: the ledger entry (its chain signature left out) or, when the same decision
    was already signed, that nothing was recorded."""
    if as_json:
        emit(_public(entry) if entry else {**unrecorded, "recorded": False})
    else:
        out.print(already if entry is None else done, highlight=False)


def _book(site: str | None) -> ReleaseBook:
    return open_book(load(site))


@app.command("create")
@handled()
def create(
    artifact: Annotated[Path, typer.Option("--artifact", help="the release: a .tar.gz with a VERSION file")],
    author: Annotated[str, typer.Option("--as", help="the person who built it (a name from people:)")],
    hotfix: Annotated[
        bool, typer.Option("--hotfix", help="an emergency fix: approvals may follow production (releases.hotfix)")
    ] = False,
    site: SiteOpt = None,
    sign_key: SignKeyOpt = None,
    statement: StatementOpt = None,
    signature: SignatureOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a new release: its artifact's SHA-256 and its author, signed with the author's own key."""
    book = _book(site)
    entry = signed(lambda how: book.create(artifact, author, how, hotfix), sign_key, statement, signature)
    if as_json:
        emit(_public(entry))
    else:
        out.print(f"release [bold]{entry['release']}[/bold] {entry['version']} {entry['digest']} by {author}")


@app.command("approve")
@handled()
def approve(
    release: ReleaseArg,
    person: Annotated[str, typer.Option("--as", help="the approver (a person with role approver or admin)")],
    site: SiteOpt = None,
    sign_key: SignKeyOpt = None,
    statement: StatementOpt = None,
    signature: SignatureOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a release for production, signed with the approver's own key; its author cannot approve."""
    book = _book(site)
    entry = signed(lambda how: book.approve(release, person, how), sign_key, statement, signature)
    say_signed(entry, as_json, {"release": release, "approved_by": person},
               f"{person} had already approved {release}; nothing recorded",
               f"{release} approved by {person}")  # fmt: skip


@app.command("deploy")
@handled()
def deploy(
    release: ReleaseArg,
    env: Annotated[str, typer.Option("--env", help="target environment, the next step on the release path")],
    key: Annotated[
        str | None, typer.Option("--key", help="private key to deploy with (default: deploy.key_file)")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--as", help="who runs the deploy, a name from people: (default: your login)")
    ] = None,
    site: SiteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a release to an environment as the deploy identity, if the path to live allows it."""
    book = _book(site)
    entry = book.deploy(release, env, actor, key=key)
    if as_json:
        emit(_public(entry))
    else:
        out.print(f"{release} deployed to {env} as {entry['identity']}; run artifacts: {entry['run']}", highlight=False)


@app.command("log")
@handled()
def log(site: SiteOpt = None, as_json: JsonOpt = False) -> None:
    """Every release, where it runs and who approved it."""
    book = _book(site)
    history = book.history()
    required = book.site.model.releases.required_approvals
    if as_json:
        emit({"releases": [describe(r, required) for r in history.releases.values()], "current": history.current})
        return
    path = release_path(book.site.model)
    table = Table(title=f"Releases of site '{book.site.name}'")
    for column in ("release", "version", "digest", "author", "approved by", *path):
        table.add_column(column)
    for rel in history.releases.values():
        table.add_row(
            rel.id, rel.version, rel.digest[:19] + "…", rel.author, ", ".join(rel.approvers()) or "-",
            *[_where(rel, env, history.current.get(env) == rel.id) for env in path],
        )  # fmt: skip
    out.print(table)


@app.command("show")
@handled()
def show(release: ReleaseArg, site: SiteOpt = None, as_json: JsonOpt = False) -> None:
    """One release's record: artifact, author, deployments, verifications and approvals."""
    book = _book(site)
    rel = require_release(book.history(), release)
    data = describe(rel, book.site.model.releases.required_approvals)
    if as_json:
        emit(data)
        return
    out.print(f"[bold]{rel.id}[/bold] version {rel.version}  {rel.digest}", highlight=False)
    out.print(f"artifact {rel.artifact}, created {rel.created} by {rel.author}", highlight=False)
    for approval in rel.approvals:
        out.print(f"approved by {approval['by']} at {approval['time']}", highlight=False)
    for d in rel.deployments:
        out.print(f"deployed to {d.env} at {d.time} by {d.actor} as {d.identity}: {d.result}; {d.run}", highlight=False)
    for v in rel.verifications:
        out.print(f"verify in {v['env']} at {v['time']}: {v['result']}; {v['run']}", highlight=False)


@app.command("verify-ledger")
@handled()
def verify_ledger(site: SiteOpt = None, as_json: JsonOpt = False) -> None:
    """Check the ledger's hash chain, signatures and head: any edit, reordering or deletion fails (exit 1)."""
    book = _book(site)
    problems = book.problems()
    entries = len(book.ledger.entries()) if not problems else None
    if as_json:
        emit({"ledger": str(book.ledger.path), "ok": not problems, "problems": [str(p) for p in problems]})
    elif problems:
        for problem in problems:
            out.print(f"[red]{escape(str(problem))}[/red]", highlight=False)
        out.print(f"the ledger {book.ledger.path} does NOT verify", highlight=False)
    else:
        out.print(
            f"the ledger {book.ledger.path} verifies: {entries} entries, chained and signed, every decision signed by "
            "the person who made it",
            highlight=False,
        )
    failed_if(bool(problems))


def _where(release: Release, env: str, current: bool) -> str:
    deployed = release.deployed(env)
    if deployed is None:
        return "-"
    return deployed.time[:16] + (" (running)" if current else "")


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "sig"}
