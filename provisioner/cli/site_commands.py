"""`provision validate | plan | apply | status | destroy`: the site's segments and machines."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.common import ConfirmOpt, JsonOpt, SiteArg, emit, err, failed_if, handled, load, out
from provisioner.engine import operations
from provisioner.engine.operations import Action, Plan, Progress

app = typer.Typer()


def print_plan(plan: Plan) -> None:
    if plan.empty:
        out.print(f"[green]No changes.[/green] Site '{plan.site}' matches its site file.")
        print_plan_notes(plan)
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
    print_plan_notes(plan)


def print_plan_notes(plan: Plan) -> None:
    for note in plan.notes:
        out.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


@app.command()
@handled()
def validate(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Check a site file; every problem names the file, line and key. Exit 2 if invalid."""
    loaded = load(site)
    model = loaded.model
    environments = [e.name for e in model.environments]
    summary: dict[str, object] = {
        "site": model.site,
        "file": str(loaded.path),
        "valid": True,
        "environments": environments,
        "hosts": len(model.hosts),
        "people": len(model.people),
        "flows": len(model.flows),
        "access_networks": {a.name: list(a.reaches) for a in model.access_networks},
    }
    if as_json:
        emit(summary)
        return
    access = "; ".join(f"{a.name} → {', '.join(a.reaches)}" for a in model.access_networks)
    out.print(
        f"[green]valid:[/green] {loaded.path} — site '{model.site}', environments "
        f"{', '.join(environments)}, {len(model.hosts)} hosts, {len(model.people)} people"
        + (f", access networks {access} (SSH only)" if access else ""),
        highlight=False,
    )


@app.command()
@handled()
def plan(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Show what apply would create, change or delete. Changes nothing."""
    loaded = load(site)
    the_plan = operations.plan(loaded)
    if as_json:
        emit(the_plan.as_dict())
    else:
        print_plan(the_plan)


@app.command()
@handled(interrupted="nothing is lost; run `provision apply` again to converge")
def apply(
    site: SiteArg = None,
    confirm_prod: ConfirmOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="run the playbooks on every host, also those found unchanged")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build segments and machines, write the inventory, run the playbooks (skipping hosts whose inputs and live
    state are unchanged since their last successful run; --full runs them all)."""
    loaded = load(site)
    progress = Progress(err if as_json else out)
    result = operations.apply(loaded, progress, confirm_prod=confirm_prod, full=full)
    run = result.run
    summary = {
        "site": loaded.name,
        "plan": result.plan.as_dict()["changes"],
        "inventory": str(result.inventory),
        "run_dir": str(run.run_dir),
        "status": run.status,
        "stats": {k: run.total(k) for k in ("ok", "changed", "failures", "dark", "skipped")},
        "failures": [f.__dict__ for f in run.failures],
        "left_out": result.left_out,
    }
    if as_json:
        emit(summary)
    else:
        for failure in run.failures:
            what = "unreachable" if failure.unreachable else "failed"
            out.print(
                f"[red]{failure.host}[/red] {what} at '{escape(failure.task)}': {escape(failure.message)}",
                highlight=False,
            )
        stats = {k: run.total(k) for k in ("ok", "changed", "failures", "dark")}
        colour = "green" if run.ok else "red"
        out.print(
            f"[{colour}]{run.status}[/{colour}]: {stats['ok']} ok, {stats['changed']} changed, "
            f"{stats['failures']} failed, {stats['dark']} unreachable",
            highlight=False,
        )
        out.print(f"run artifacts (job events, stdout): {run.run_dir}", highlight=False)
    failed_if(not run.ok)


@app.command()
@handled()
def status(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Show each segment and machine of the site and whether it exists and runs."""
    loaded = load(site)
    data = operations.status(loaded)
    if as_json:
        emit(data)
        return
    table = Table(title=f"Site '{loaded.name}' on {data['backend']}")
    for column in ("name", "kind", "environment", "address", "state", "drift"):
        table.add_column(column)
    for row in data["machines"]:
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
    for seg in data["segments"]:
        mark = "[green]present[/green]" if seg["present"] else "[red]missing[/red]"
        out.print(f"segment {seg['segment']}: {seg['cidr']} vlan {seg['vlan'] or '-'} {mark}", highlight=False)
    print_hypervisor_firewall(data["hypervisor_firewall"])


def print_hypervisor_firewall(reading: dict[str, Any] | None) -> None:
    if reading is None:
        return
    machines: dict[str, list[str]] = reading["machines"]
    problems = list(reading["problems"]) + [p for found in machines.values() for p in found]
    if not problems:
        out.print(f"[green]hypervisor firewall: in force for {len(machines)} hosts[/green]", highlight=False)
        return
    out.print("[red]hypervisor firewall: not in force everywhere[/red]", highlight=False)
    for problem in problems:
        out.print(f"  {escape(problem)}", highlight=False)


@app.command()
@handled(interrupted="run `provision destroy` again to finish")
def destroy(
    site: SiteArg = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="destroy only this environment (repeatable)")] = None,
    confirm_prod: ConfirmOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the site's machines and segments (all, or --env ones). Production needs --confirm-prod SITE."""
    loaded = load(site)
    progress = Progress(err if as_json else out)
    the_plan = operations.destroy(loaded, progress, environments=env, confirm_prod=confirm_prod)
    if as_json:
        emit(the_plan.as_dict())
    else:
        out.print(f"destroyed {len(the_plan.changes)} resource(s) of site '{loaded.name}'")
