"""`provision`: a thin command line over provisioner.engine.operations.

Exit codes: 0 done; 1 the operation failed; 2 bad input (site file or arguments), nothing touched;
3 refused by policy (production needs confirmation), nothing touched; 130 interrupted, safe to re-run.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provisioner import __version__
from provisioner.engine import operations
from provisioner.engine.planner import Action, Plan
from provisioner.engine.progress import Progress
from provisioner.errors import ExitCode, InputError, ProvisionError, SiteError
from provisioner.site.load import LoadedSite, load_site

app = typer.Typer(
    help="Separate development, test and production environments on your own hypervisors, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
image_app = typer.Typer(help="Base images the backends clone hosts from.", no_args_is_help=True)
app.add_typer(image_app, name="image")
data_app = typer.Typer(
    help="Test data (DATA-1..3): synthetic seeding, authorised anonymised refresh, the personal-data scan.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

out = Console()
err = Console(stderr=True)

SiteArg = Annotated[
    str | None,
    typer.Argument(help="site name under inventories/, a site directory, or a site.yml path", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
ConfirmOpt = Annotated[
    str | None, typer.Option("--confirm-prod", metavar="SITE", help="confirm changes to production by naming the site")
]


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _fail(exc: ProvisionError, as_json: bool) -> None:
    if as_json:
        payload: dict[str, Any] = {"error": str(exc), "exit_code": int(exc.exit_code)}
        if isinstance(exc, SiteError):
            payload["problems"] = [p.__dict__ for p in exc.problems]
        _emit(payload)
    label = (
        "invalid" if exc.exit_code == ExitCode.INVALID else "refused" if exc.exit_code == ExitCode.REFUSED else "error"
    )
    err.print(f"[bold red]{label}:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(exc.exit_code))


def _load(site: str | None, as_json: bool) -> LoadedSite:
    try:
        return load_site(site)
    except ProvisionError as exc:
        _fail(exc, as_json)
        raise  # unreachable


def _print_plan(plan: Plan) -> None:
    if plan.empty:
        out.print(f"[green]No changes.[/green] Site '{plan.site}' matches its site file.")
        return
    table = Table(title=f"Plan for site '{plan.site}'")
    for column in ("action", "kind", "name", "environment", "detail"):
        table.add_column(column)
    colours = {Action.CREATE: "green", Action.DELETE: "red", Action.REPLACE: "red", Action.UPDATE: "yellow"}
    for change in plan.changes:
        colour = colours.get(change.action, "cyan")
        env = (change.environment or "-") + (" [bold red](production)[/bold red]" if change.production else "")
        table.add_row(f"[{colour}]{change.action}[/{colour}]", str(change.kind), change.name, env, change.detail)
    out.print(table)
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in Action}
    out.print(", ".join(f"{n} to {a}" for a, n in counts.items() if n))


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
) -> None:
    if version:
        out.print(f"provisioner {__version__}")
        raise typer.Exit(0)


@app.command()
def validate(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Check a site file; every problem names the file, line and key. Exit 2 if invalid."""
    loaded = _load(site, as_json)
    model = loaded.model
    summary = {
        "site": model.site,
        "file": str(loaded.path),
        "valid": True,
        "environments": [e.name for e in model.environments],
        "hosts": len(model.hosts),
        "people": len(model.people),
        "flows": len(model.flows),
    }
    if as_json:
        _emit(summary)
        return
    out.print(
        f"[green]valid:[/green] {loaded.path} — site '{model.site}', environments "
        f"{', '.join(summary['environments'])}, {summary['hosts']} hosts, {summary['people']} people",
        highlight=False,
    )


@app.command()
def plan(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Show what apply would create, change or delete. Changes nothing."""
    loaded = _load(site, as_json)
    try:
        the_plan = operations.plan(loaded)
    except ProvisionError as exc:
        _fail(exc, as_json)
    if as_json:
        _emit(the_plan.as_dict())
    else:
        _print_plan(the_plan)


@app.command()
def apply(site: SiteArg = None, confirm_prod: ConfirmOpt = None, as_json: JsonOpt = False) -> None:
    """Build segments and machines, write the inventory, run the playbooks."""
    loaded = _load(site, as_json)
    progress = Progress(err if as_json else out)
    try:
        result = operations.apply(loaded, progress, confirm_prod=confirm_prod)
    except ProvisionError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]: nothing is lost; run `provision apply` again to converge")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    run = result.run
    summary = {
        "site": loaded.name,
        "plan": result.plan.as_dict()["changes"],
        "inventory": str(result.inventory),
        "run_dir": str(run.run_dir),
        "status": run.status,
        "stats": {k: run.total(k) for k in ("ok", "changed", "failures", "dark", "skipped")},
        "failures": [f.__dict__ for f in run.failures],
    }
    if as_json:
        _emit(summary)
    else:
        for failure in run.failures:
            what = "unreachable" if failure.unreachable else "failed"
            out.print(
                f"[red]{failure.host}[/red] {what} at '{escape(failure.task)}': {escape(failure.message)}",
                highlight=False,
            )
        stats = summary["stats"]
        colour = "green" if run.ok else "red"
        out.print(
            f"[{colour}]{run.status}[/{colour}]: {stats['ok']} ok, {stats['changed']} changed, "
            f"{stats['failures']} failed, {stats['dark']} unreachable",
            highlight=False,
        )
        out.print(f"run artifacts (job events, stdout): {run.run_dir}", highlight=False)
    if not run.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command()
def status(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Show each segment and machine of the site and whether it exists and runs."""
    loaded = _load(site, as_json)
    try:
        data = operations.status(loaded)
    except ProvisionError as exc:
        _fail(exc, as_json)
    if as_json:
        _emit(data)
        return
    table = Table(title=f"Site '{loaded.name}' on {data['backend']}")
    for column in ("name", "kind", "environment", "address", "state", "drift"):
        table.add_column(column)
    for row in data["machines"]:  # type: ignore[union-attr]
        colour = "green" if row["state"] == "running" else "red"
        table.add_row(
            row["name"],
            row["kind"],
            row["environment"] or "-",
            row["address"],
            f"[{colour}]{row['state']}[/{colour}]",
            "; ".join(row["drift"]),
        )
    out.print(table)
    for seg in data["segments"]:  # type: ignore[union-attr]
        mark = "[green]present[/green]" if seg["present"] else "[red]missing[/red]"
        out.print(f"segment {seg['segment']}: {seg['cidr']} vlan {seg['vlan'] or '-'} {mark}", highlight=False)


@app.command()
def destroy(
    site: SiteArg = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="destroy only this environment (repeatable)")] = None,
    confirm_prod: ConfirmOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the site's machines and segments (all, or --env ones). Production needs --confirm-prod SITE."""
    loaded = _load(site, as_json)
    progress = Progress(err if as_json else out)
    try:
        the_plan = operations.destroy(loaded, progress, environments=env, confirm_prod=confirm_prod)
    except ProvisionError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]: run `provision destroy` again to finish")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    if as_json:
        _emit(the_plan.as_dict())
    else:
        out.print(f"destroyed {len(the_plan.changes)} resource(s) of site '{loaded.name}'")


@app.command()
def verify(
    site: SiteArg = None,
    workers: Annotated[int, typer.Option("--workers", "-n", min=1, max=32, help="parallel workers")] = 4,
    keys: Annotated[
        str | None, typer.Option("--keys", help="folder of people's private keys for login attempts")
    ] = None,
    select: Annotated[str | None, typer.Option("-k", help="only checks matching this pytest expression")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the conformance suite: read state from the hosts and attempt what must fail. Exit 1 if a control fails."""
    from pathlib import Path

    from provisioner.conformance.controls import CONTROLS
    from provisioner.conformance.verify import run_verify

    loaded = _load(site, as_json)
    try:
        result = run_verify(loaded, workers=workers, keys_dir=Path(keys) if keys else None, select=select)
    except ProvisionError as exc:
        _fail(exc, as_json)
    summary = result.by_control()
    recorded = _record_release_verify(loaded, result, partial=select is not None)
    if as_json:
        _emit(
            {
                "site": loaded.name,
                "ok": result.ok,
                "run_dir": str(result.run_dir),
                "controls": summary,
                "failures": result.failed,
                "releases_verified": recorded,
            }
        )
    else:
        table = Table(title=f"Conformance of site '{loaded.name}' (ISO 27001:2022 A.8.31)")
        for column in ("control", "title", "pass", "fail", "skip", "status"):
            table.add_column(column)
        for cid, counts in summary.items():
            status = (
                "[red]FAIL[/red]"
                if counts["fail"]
                else "[yellow]WAIVED[/yellow]"
                if counts.get("waived")
                else "[green]PASS[/green]"
                if counts["pass"]
                else "skipped"
            )
            title = CONTROLS[cid].title if cid in CONTROLS else ""
            table.add_row(cid, title, str(counts["pass"]), str(counts["fail"]), str(counts["skip"]), status)
        out.print(table)
        for failure in result.failed:
            out.print(
                f"[red]{failure['control']}[/red] {escape(failure['check'] + '[' + failure['host'] + ']')}: "
                f"{escape(failure['evidence'].splitlines()[-1] if failure['evidence'] else failure['observed'])}",
                highlight=False,
            )
        out.print(f"results (JSON, JUnit XML): {result.run_dir}", highlight=False)
    if not result.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command(
    context_settings={"help_option_names": ["--help", "-h"]},
    epilog="`provision report verify DIR [--key FILE]` checks a pack: every file against MANIFEST.sha256 and the "
    "signature over it (by FILE's key when given). Exit 0 if it holds; 1 naming the file that does not.",
)
def report(
    target: Annotated[
        list[str] | None,
        typer.Argument(metavar="[SITE] | verify DIR", help="the site to report on; or `verify DIR` to check a pack"),
    ] = None,
    out_dir: Annotated[
        str | None,
        typer.Option("--out", help="folder for the pack (new or empty); default <state>/evidence/reports/<time>"),
    ] = None,
    trusted_key: Annotated[
        str | None,
        typer.Option("--key", metavar="FILE", help="with `verify`: the public key the pack must be signed with"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The auditor's evidence pack (DOC-1) from the latest verify run and live state: HTML, PDF, JSON, JUnit,
    OSCAL, network diagram, signed checksum manifest."""
    from pathlib import Path

    args = list(target or [])
    if args and args[0] == "verify":
        if len(args) != 2:
            _fail(InputError("usage: provision report verify DIR"), as_json)
        _report_verify(Path(args[1]), Path(trusted_key) if trusted_key else None, as_json)
        return
    if len(args) > 1:
        _fail(InputError(f"one site expected, got {' '.join(args)}"), as_json)
    from provisioner.report.collect import collect
    from provisioner.report.pack import default_folder, write_pack
    from provisioner.workspace.site_state import SiteState

    loaded = _load(args[0] if args else None, as_json)
    state = SiteState(loaded.name)
    try:
        data = collect(loaded, state)
        folder = write_pack(data, Path(out_dir) if out_dir else default_folder(state), state)
    except ProvisionError as exc:
        _fail(exc, as_json)
    failing = [c["id"] for c in data["controls"] if c["status"] == "fail"]
    if as_json:
        _emit({"site": loaded.name, "pack": str(folder), "verify_run": data["verify_run"], "failing": failing,
               "differences": data["live"]["differences"]})  # fmt: skip
        return
    for question in data["questions"]:
        out.print(f"{question['id']} {question['status']}: {escape(question['answer'])}", highlight=False)
    if failing:
        out.print(f"[red]failing controls:[/red] {', '.join(failing)}", highlight=False)
    for difference in data["live"]["differences"]:
        out.print(f"[red]differs from the site file:[/red] {escape(difference)}", highlight=False)
    out.print(f"evidence pack: {folder}", highlight=False)


def _report_verify(folder: Any, key_file: Any, as_json: bool) -> None:
    from provisioner.report.manifest import verify_pack

    if not folder.is_dir():
        _fail(InputError(f"{folder}: no such folder"), as_json)
    if key_file is not None and not key_file.is_file():
        _fail(InputError(f"--key: {key_file}: no such file"), as_json)
    problems = verify_pack(folder, key_file.read_text().strip() if key_file is not None else None)
    if as_json:
        _emit({"pack": str(folder), "ok": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            err.print(f"[red]tampered:[/red] {escape(problem)}", highlight=False)
    else:
        out.print(f"[green]intact:[/green] every file of {folder} matches its signed manifest", highlight=False)
    if problems:
        raise typer.Exit(int(ExitCode.FAILED))


def _record_release_verify(loaded: LoadedSite, result: Any, partial: bool) -> list[dict[str, str]]:
    """A full verify run is recorded in the release ledger for each environment running a release (CHG-1)."""
    from provisioner.releases.service import ReleaseBook

    if partial:
        return []
    try:
        entries = ReleaseBook.open(loaded).record_verify(result.run_dir, result.ok)
    except ProvisionError as exc:
        err.print(f"[yellow]not recorded in the release ledger:[/yellow] {escape(str(exc))}", highlight=False)
        return []
    return [{"env": e["env"], "release": e["release"], "result": e["result"]} for e in entries]


class DoctorBackend(StrEnum):
    ALL = "all"
    LXC = "lxc"
    LIBVIRT = "libvirt"
    PROXMOX = "proxmox"


@app.command()
def doctor(
    site: SiteArg = None,
    backend: Annotated[
        DoctorBackend | None,
        typer.Option("--backend", help="check for this backend instead of a site's (all: every backend)"),
    ] = None,
    suite: Annotated[bool, typer.Option("--suite", help="also what `make setup` and the test suite need")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="list every check, not only what lacks")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check this machine before anything runs: programs, kernel features, disk, daemons. Exit 2 if something lacks."""
    from provisioner.controller import doctor as checkup

    required_daemons = False
    if backend is None:
        loaded = _load(site, as_json)
        backends = {loaded.model.backend.type}
        uri = getattr(loaded.model.backend, "uri", "")
        required_daemons = loaded.model.backend.type == "libvirt" and uri.startswith("qemu:///")
    elif site is not None:
        _fail(InputError("name a site or --backend, not both"), as_json)
    else:
        backends = set(checkup.BACKEND_USES) if backend == DoctorBackend.ALL else {backend.value}
    findings = checkup.examine(backends, suite=suite, libvirt_daemons_required=required_daemons)
    failed = [f for f in findings if not f.ok]
    fix = checkup.fix_command(findings)
    if as_json:
        _emit({"ok": not failed, "backends": sorted(backends), "fix": fix, "findings": [f.__dict__ for f in findings]})
    else:
        scope = f"{', '.join(sorted(backends))}{' and the test suite' if suite else ''}"
        shown = findings if verbose else failed
        if shown:
            table = Table(title=f"provision doctor: {scope}")
            for column in ("check", "status", "detail"):
                table.add_column(column, overflow="fold")
            for f in shown:
                status = "[green]ok[/green]" if f.ok else "[bold red]MISSING[/bold red]"
                table.add_row(f.check, status, escape(f.detail))
            out.print(table)
        for line in dict.fromkeys(f.fix for f in failed if f.fix and not f.package):
            err.print(f"to fix: {escape(line)}", highlight=False)
        if fix:
            err.print(f"to fix: {fix}   (or: make setup)", highlight=False)
        passed = len(findings) - len(failed)
        colour = "red" if failed else "green"
        out.print(f"[{colour}]doctor ({scope}): {passed} of {len(findings)} checks passed[/{colour}]", highlight=False)
    if failed:
        raise typer.Exit(int(ExitCode.INVALID))


class ImageBackend(StrEnum):
    ALL = "all"
    LXC = "lxc"
    LIBVIRT = "libvirt"


@image_app.command("build")
def image_build(
    backend: Annotated[
        ImageBackend, typer.Option("--backend", help="which base image: the LXC lab's, the libvirt guests', or both")
    ] = ImageBackend.ALL,
    packages: Annotated[
        list[str] | None,
        typer.Option("--package", metavar="NAME", help="also bake this Debian package into the image (repeatable)"),
    ] = None,
) -> None:
    """Build the Debian base images hosts are cloned from (once; later calls do nothing); needs only the mirror."""
    extra = packages or []

    def say(message: str) -> None:
        out.print(f"· {message}", highlight=False)

    try:
        if backend in (ImageBackend.ALL, ImageBackend.LXC):
            from provisioner.backends.lxc import base_image

            rootfs = base_image.ensure_base(base_image.lxc_path(), say=say, extra_packages=extra)
            out.print(f"LXC base image ready: {rootfs}", highlight=False)
        if backend in (ImageBackend.ALL, ImageBackend.LIBVIRT):
            from provisioner.backends.libvirt import guest_image

            image = guest_image.ensure_built(say=say, extra_packages=extra)
            out.print(f"libvirt guest image ready: {image.directory}", highlight=False)
    except ProvisionError as exc:
        _fail(exc, False)


# ---- provision data --------------------------------------------------------------------------------------
EnvOpt = Annotated[str, typer.Option("--env", help="the environment (by name)")]


def _data_call(as_json: bool, action: Any) -> Any:
    try:
        return action()
    except ProvisionError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]: each data operation is one transaction; run it again")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


@data_app.command("seed")
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
    from provisioner.personal_data import service

    loaded = _load(site, as_json)
    record = _data_call(as_json, lambda: service.seed(loaded, env, seed, customers))
    if as_json:
        _emit(_public(record))
        return
    tables = ", ".join(f"{t['name']} ({t['rows']} rows)" for t in record["tables"])
    out.print(f"[green]seeded[/green] {env} with synthetic data (seed {record['seed']}): {tables}", highlight=False)
    out.print(f"provenance record: {record['file']}", highlight=False)


@data_app.command("refresh")
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
    from provisioner.personal_data import service

    loaded = _load(site, as_json)
    record = _data_call(as_json, lambda: service.refresh(loaded, from_env, to_env, authorisation))
    if as_json:
        _emit(_public(record))
        return
    auth = record["authorisation"]
    out.print(
        f"[green]refreshed[/green] {to_env} from {from_env} through the anonymiser under '{auth['id']}' "
        f"(requested by {auth['requester']}, approved by {auth['approver']}); scrub by {auth['scrub_by']}",
        highlight=False,
    )
    out.print(f"provenance record: {record['file']}", highlight=False)


@data_app.command("scrub")
def data_scrub(site: SiteArg = None, *, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Remove every table of an environment's database (after a refresh: before its scrub deadline)."""
    from provisioner.personal_data import service

    loaded = _load(site, as_json)
    record = _data_call(as_json, lambda: service.scrub(loaded, env))
    if as_json:
        _emit(_public(record))
        return
    out.print(f"[green]scrubbed[/green] {env}; record: {record['file']}", highlight=False)


@data_app.command("scan")
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
    from provisioner.personal_data import service

    loaded = _load(site, as_json)
    report = _data_call(as_json, lambda: service.scan(loaded, env, sample_rows))
    if as_json:
        _emit(_public(report))
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
    if report["findings"]:
        raise typer.Exit(int(ExitCode.FAILED))


from provisioner.cli_release import release_app  # noqa: E402 - it builds on the helpers above

app.add_typer(release_app, name="release")


def main() -> None:
    app()
