"""`provision verify`, `provision report` and `provision policy`: the conformance suite, the auditor's evidence
pack, and the Secure Development Policy."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.common import JsonOpt, SiteArg, emit, err, failed_if, handled, load, out
from provisioner.engine import evidence
from provisioner.errors import InputError, shown

app = typer.Typer()


@app.command()
@handled()
def verify(
    site: SiteArg = None,
    workers: Annotated[
        int, typer.Option("--workers", "-n", min=1, max=32, help="parallel workers")
    ] = evidence.DEFAULT_WORKERS,
    keys: Annotated[
        str | None, typer.Option("--keys", help="folder of people's private keys for login attempts")
    ] = None,
    select: Annotated[str | None, typer.Option("-k", help="only checks matching this pytest expression")] = None,
    controls: Annotated[
        str | None,
        typer.Option(
            "--controls",
            metavar="NET,ACC-2",
            help="only these controls: IDs or families of the catalogue, comma-separated (a partial run is not "
            "recorded in the release ledger)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the conformance suite: read state from the hosts and attempt what must fail. Exit 1 if a control fails."""
    wanted = evidence.controls_named(controls)
    loaded = load(site)
    verification = evidence.verify(loaded, workers=workers, keys=keys, select=select, controls=wanted)
    if verification.ledger_problem:
        err.print(
            f"[yellow]not recorded in the release ledger:[/yellow] {escape(verification.ledger_problem)}",
            highlight=False,
        )
    result, recorded = verification.result, verification.releases_verified
    summary = result.by_control()
    if as_json:
        emit(
            {
                "site": loaded.name,
                "ok": result.ok,
                "run_dir": str(result.run_dir),
                "controls": summary,
                "verdicts": result.verdicts(),
                "covered": result.covered,
                "failures": result.failed,
                "not_attempted": result.unattempted,
                "accepted_risks": [
                    {**{k: r[k] for k in ("control", "check", "host")}, "verdict": result.accepted_risk(r)}
                    for r in result.waived
                ],
                "releases_verified": recorded,
            }
        )
    else:
        table = Table(title=f"Conformance of site '{loaded.name}' (ISO 27001:2022 A.8.31)")
        for column in ("control", "title", "pass", "fail", "waived", "skip", "status"):
            table.add_column(column)
        shown = {"fail": "[red]FAIL[/red]", "waived": "[yellow]ACCEPTED RISK[/yellow]", "pass": "[green]PASS[/green]"}
        for cid, verdict in result.verdicts().items():
            counts = summary[cid]
            title = evidence.control_title(cid)
            numbers = [str(counts.get(k, 0)) for k in ("pass", "fail", "waived", "skip")]
            table.add_row(cid, title, *numbers, shown.get(verdict, "skipped"))
        out.print(table)
        if result.covered is not None:
            out.print(
                f"this run verified only {', '.join(result.covered)}: it says nothing of the other controls",
                highlight=False,
            )
        for failure in result.failed:
            out.print(
                f"[red]{failure['control']}[/red] {escape(failure['check'] + '[' + failure['host'] + ']')}: "
                f"{escape(failure['evidence'].splitlines()[-1] if failure['evidence'] else failure['observed'])}",
                highlight=False,
            )
        for row in result.unattempted:
            out.print(
                f"[red]{row['control']}[/red] {escape(row['check'] + '[' + row['host'] + ']')}: "
                f"{escape(row['evidence'].splitlines()[-1])} (declare it under out_of_scope: in the site file, with a "
                "reason and who decided it, if this attempt is not to be made)",
                highlight=False,
            )
        for waived in result.waived:
            out.print(
                f"[yellow]{waived['control']}[/yellow] {escape(waived['check'] + '[' + waived['host'] + ']')}: "
                f"failed; waived, not passed: {escape(result.accepted_risk(waived))}",
                highlight=False,
            )
        out.print(f"results (JSON, JUnit XML): {result.run_dir}", highlight=False)
    failed_if(not result.ok)


@app.command(
    context_settings={"help_option_names": ["--help", "-h"]},
    epilog="`provision report verify DIR [--key FILE]` checks a pack: every file against MANIFEST.sha256 and the "
    "signature over it, and the verify run's results against their signature, by FILE's key; without --key only "
    "against the key the pack carries (integrity, not origin: it says so). Exit 0 if it holds; 1 naming the file "
    "that does not.",
)
@handled()
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
    start: Annotated[
        str | None,
        typer.Option("--from", metavar="DATE", help="the period's start: YYYY-MM-DD or an ISO date-time (UTC)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", metavar="DATE", help="the period's end (exclusive), as --from")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The auditor's evidence pack (DOC-1) from the latest verify run and live state: HTML, PDF, JSON, JUnit,
    OSCAL, network diagram, signed checksum manifest. With --from and --to, also the verification history over
    that period: per control a timeline, the scheduled runs that ran, every failure window, the blocked attempts,
    and the history check."""
    args = list(target or [])
    if args and args[0] == "verify":
        if len(args) != 2:
            raise InputError("usage: provision report verify DIR [--key FILE]")
        if out_dir is not None or start is not None or end is not None:
            raise InputError("--out, --from and --to write a pack; `report verify DIR` checks one and takes only --key")
        _report_verify(args[1], trusted_key, as_json)
        return
    if len(args) > 1:
        got = " ".join(shown(a) for a in args)
        raise InputError(f"one site expected, got {got}; usage: provision report [SITE] [--out DIR]")
    if trusted_key is not None:
        raise InputError("--key goes with `report verify DIR`; writing a pack takes [SITE] [--out DIR]")
    period = evidence.check_period(start, end)
    loaded = load(args[0] if args else None)
    pack = evidence.write_report(loaded, out_dir, period)
    data, folder = pack.data, pack.folder
    failing = [c["id"] for c in data["controls"] if c["status"] == "fail"]
    key = pack.evidence_key
    run = data["verify_results"]
    if as_json:
        emit({"site": loaded.name, "pack": str(folder), "verify_run": data["verify_run"], "failing": failing,
              "differences": data["live"]["differences"], "evidence_key": key["fingerprint"],
              "verify_results": run, **_period_summary(data)})  # fmt: skip
        return
    out.print(
        f"from verify run {run['run']} (finished {run['finished']}): results {run['digest']}, signed by "
        f"{run['signer']}",
        highlight=False,
        soft_wrap=True,
    )
    for question in data["questions"]:
        out.print(f"{question['id']} {question['status']}: {escape(question['answer'])}", highlight=False)
    if failing:
        out.print(f"[red]failing controls:[/red] {', '.join(failing)}", highlight=False)
    if "period" in data:
        _print_period(data["period"])
    for difference in data["live"]["differences"]:
        out.print(f"[red]differs from the site file:[/red] {escape(difference)}", highlight=False)
    out.print(f"evidence pack: {folder}", highlight=False)
    out.print(
        f"signed by the evidence key {key['identity']}, fingerprint {key['fingerprint']}: the auditor pins it; "
        "VERIFY.md in the pack checks it all with sha256sum and ssh-keygen",
        highlight=False,
        soft_wrap=True,
    )


def _period_summary(data: dict[str, Any]) -> dict[str, Any]:
    if "period" not in data:
        return {}
    section = data["period"]
    return {
        "period": {
            "from": section["from"],
            "to": section["to"],
            "verdict": section["verdict"],
            "history_ok": section["history"]["ok"],
            "history_problems": [p["text"] for p in section["history"]["problems"]],
            "windows": section["windows"],
            "schedules": section["schedules"],
        }
    }


def _print_period(section: dict[str, Any]) -> None:
    verdict = section["verdict"]
    colour = "green" if verdict["status"] == "proven" else "red"
    out.print(
        f"period {section['from']} to {section['to']}: [{colour}]{verdict['status']}[/{colour}] "
        f"({escape(verdict['text'])}); {section['runs_in_period']} runs",
        highlight=False,
        soft_wrap=True,
    )
    for problem in section["history"]["problems"]:
        out.print(f"[red]history:[/red] {escape(problem['text'])}", highlight=False)
    for window in section["windows"]:
        end = "still open at the end of the period" if window["open_at_end"] else (
            f"repaired {window['end']['time']} (run {window['end']['run']}), after {window['repair']}"
        )  # fmt: skip
        out.print(
            f"[red]{window['control']}[/red] failing from {window['start']['time']} (run {window['start']['run']}): "
            f"{end}",
            highlight=False,
            soft_wrap=True,
        )
    for schedule in section["schedules"]:
        share = "no slot in the period" if schedule["share"] is None else f"{schedule['share']:.1%}"
        out.print(
            f"schedule {schedule['name']}: {schedule['ran']} of {schedule['expected']} scheduled runs ran ({share})",
            highlight=False,
        )


@app.command()
@handled()
def history(site: SiteArg = None, as_json: JsonOpt = False) -> None:
    """Check the verification history: its hash chain, every signature and its signed head. Exit 1 naming the
    line and what is wrong (deleted, reordered, edited, signature, cut off); 0 when it holds."""
    loaded = load(site)
    check = evidence.check_history(loaded)
    if as_json:
        emit({"site": loaded.name, "history": str(check.path), "ok": not check.problems, "entries": check.entries,
              "problems": check.problems})  # fmt: skip
    elif check.problems:
        for problem in check.problems:
            out.print(f"[red]{problem['kind']}:[/red] {escape(problem['text'])}", highlight=False)
        out.print(f"the verification history {check.path} does NOT hold", highlight=False, soft_wrap=True)
    else:
        out.print(
            f"the verification history {check.path} holds: {check.entries} entries, chained and signed",
            highlight=False,
            soft_wrap=True,
        )
    failed_if(bool(check.problems))


NOT_PINNED = (
    "the key was not pinned: the pack was checked only against the key it carries ({key}), so this proves the pack "
    "is intact, not who made it; compare that fingerprint with the one the site gave you, or check again with "
    "--key FILE (the site's evidence-signing-key.pub)"
)


def _report_verify(folder: str, key_file: str | None, as_json: bool) -> None:
    check = evidence.check_pack(folder, key_file)
    problems, carried = check.problems, check.carried_fingerprint or "unreadable"
    if as_json:
        emit({"pack": str(folder), "ok": not problems, "problems": problems, "key_pinned": check.pinned,
              "signed_by": check.carried_fingerprint})  # fmt: skip
    elif problems:
        for problem in problems:
            err.print(f"[red]tampered:[/red] {escape(problem)}", highlight=False)
    elif check.pinned:
        out.print(
            f"[green]intact:[/green] every file of {folder} matches its signed manifest, signed by the pinned key "
            f"{carried}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(f"[green]intact:[/green] every file of {folder} matches its signed manifest", highlight=False)
        err.print(
            f"[yellow]origin not proven:[/yellow] {NOT_PINNED.format(key=carried)}", highlight=False, soft_wrap=True
        )
    failed_if(bool(problems))


class PolicyFormat(StrEnum):
    MD = "md"
    PDF = "pdf"


@app.command()
@handled()
def policy(
    site: SiteArg = None,
    fmt: Annotated[PolicyFormat, typer.Option("--format", help="Markdown (md) or PDF")] = PolicyFormat.MD,
    out_file: Annotated[
        str | None, typer.Option("--out", metavar="FILE", help="write to FILE instead of printing to stdout")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The Secure Development Policy, generated from the site file: environments, who may access what, data rules,
    the path to live, approvals, exceptions, emergency fixes. Markdown on stdout unless --format/--out say."""
    to_terminal = sys.stdout.isatty() and not as_json
    target = evidence.check_policy_out(out_file, fmt.value, to_terminal)
    if as_json and target is None:
        raise InputError("--json reports where the policy was written: add --out FILE")
    loaded = load(site)
    if target is not None:
        written = evidence.write_policy(loaded, fmt.value, target)
        if as_json:
            emit({"site": loaded.name, "format": fmt.value, "out": str(written)})
        else:
            err.print(f"policy of site '{loaded.name}' ({fmt.value}): {written}", highlight=False)
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(evidence.policy_document(loaded, fmt.value))
    sys.stdout.buffer.flush()
