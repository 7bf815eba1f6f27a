"""Everything the evidence pack shows, gathered into one dict: the latest verify run with waivers applied,
live state from the backend and the hosts, the release ledger, the verify history and the site's policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path
from typing import Any

from provisioner.backends.base import Attachment
from provisioner.conformance import history, signed_results
from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.signed_results import RESULTS_FILE, SIGNATURE_FILE, SignedRun
from provisioner.conformance.titles import check_title
from provisioner.conformance.waivers import (
    accepted_risk,
    accepted_waivers,
    apply_waivers,
    control_status,
    summarise,
    waiver_state,
)
from provisioner.releases.decisions import signed_waivers as decisions_signed_waivers
from provisioner.report import access_matrix, decisions, diagram, period, releases, timeline_svg
from provisioner.report import policy as policy_doc
from provisioner.site.load import LoadedSite
from provisioner.site.model import Site
from provisioner.site.policy import access_level, deploy_envs, resolved_flows
from provisioner.site.watch_schedules import catalogue_ids, intervals_by_control
from provisioner.workspace.site_state import SiteState

ACCEPTED_RISK = "accepted risk"  # a question's verdict where a waiver accepts a failure its answer rests on
QUESTIONS = (
    (
        "Q1",
        "Can your junior developer log into the live database right now and delete a table?",
        ("ACC-2", "ACC-3", "NET-2"),
    ),
    (
        "Q2",
        "Show me the data in your test environment. Is that a real customer's name and address?",
        ("DATA-1", "DATA-2"),
    ),
    (
        "Q3",
        "Show me the record of your last software release. Who approved it moving from test to live?",
        ("CHG-2", "CHG-4"),
    ),
)


def latest_verify_run(state: SiteState) -> SignedRun:
    """The latest verify run by the finish time its signed results record, its signature checked against the
    site's evidence key; refused (UnsignedResults, naming the run and why) when it is unsigned, changed after
    verify or signed by another key. An older run is never taken in its place."""
    return signed_results.latest_signed_run(state)


def load_results(state: SiteState, run_dir: Path) -> SignedRun:
    """One verify run's results, as verify signed them (refused otherwise)."""
    return signed_results.check_run(state, run_dir)


def reachability(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NET-2's matrix rows (source, destination, port, expected, observed), each with its check's time."""
    return [
        {"time": row.get("time", ""), **r}
        for row in rows
        if row["control"] == "NET-2"
        for r in row.get("rows", [])
        if isinstance(r, dict)
    ]


def _catalogue(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    known = {cid: c.as_dict() for cid, c in CONTROLS.items()}
    for cid, data in (payload.get("controls") or {}).items():
        known.setdefault(cid, data)  # controls a newer suite knows (e.g. DATA-*, CHG-*) keep their own refs
    return known


def controls_section(rows: list[dict[str, Any]], catalogue: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    counts = summarise(rows)
    section = []
    unknown = {r["control"]: {"title": "", "iso2022": [], "iso2013": ""} for r in rows if r["control"] not in catalogue}
    for cid, meta in {**catalogue, **unknown}.items():
        mine = [r for r in rows if r["control"] == cid]
        section.append(
            {
                "id": cid,
                "title": meta.get("title", ""),
                "severity": meta.get("severity", ""),
                "iso2022": list(meta.get("iso2022", [])),
                "iso2013": meta.get("iso2013", ""),
                "status": control_status(counts[cid]) if cid in counts else "not checked",
                "counts": counts.get(cid, {}),
                "results": mine,
                "hosts": sorted({r["host"] for r in mine}),
                "accepted_risk": accepted_risk(mine),  # '' unless a waiver accepts a failure of it
            }
        )
    return section


def _answer(
    status_by_control: dict[str, str], ids: tuple[str, ...], evidence: list[dict[str, Any]], yes: str, no: str
) -> tuple[str, str]:
    """The verdict on a question: at risk (a check failed), accepted risk (a check failed and a waiver accepts
    it: never 'proven'), partly proven, proven, or not checked."""
    statuses = [status_by_control.get(cid, "not checked") for cid in ids]
    if all(s == "not checked" for s in statuses):
        return "not checked", "No result of " + ", ".join(ids) + " in the latest verify run: not checked."
    if "fail" in statuses:
        return "at risk", yes
    partly = any(s in ("skip", "not checked") for s in statuses)
    risk = accepted_risk(evidence)
    if risk or "waived" in statuses:
        return ACCEPTED_RISK, (
            f"{risk or 'accepted risk (a waiver)'}: a check below failed and its failure is waived, not fixed, so "
            "this answer rests on the waiver and its compensating controls, not on the checks"
            + ("; some checks were also skipped or not run (see below)." if partly else ".")
        )
    unattempted = not_attempted_text(evidence)
    if unattempted:
        return "partly proven", f"{no} But not every attempt was made: {unattempted}."
    if partly:
        return "partly proven", no + " (some checks were skipped or not run; see below)"
    return "proven", no


def not_attempted_text(evidence: list[dict[str, Any]]) -> str:
    """The attempts a run did not make, with the site's out-of-scope declaration where there is one: an answer
    resting on them is never 'proven'."""
    said = []
    for row in evidence:
        scope = row.get("out_of_scope")
        if scope:
            said.append(
                f"{row['control']} {row['host']} not attempted, out of scope ({scope['reason']}; decided by "
                f"{scope['decided_by']})"
            )
        elif row.get("not_attempted"):
            said.append(f"{row['control']} {row['host']} not attempted and not declared out of scope")
    return "; ".join(said)


def questions(
    site: Site,
    rows: list[dict[str, Any]],
    controls: list[dict[str, Any]],
    ledger: releases.Ledger,
    signed: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    by_id = {c["id"]: c["status"] for c in controls}
    prod_envs = {e.name for e in site.environments if e.tier == "production"}
    out = []
    for qid, text, ids in QUESTIONS:
        evidence = [r for r in rows if r["control"] in ids]
        entry: dict[str, Any] = {"id": qid, "question": text, "controls": list(ids), "evidence": evidence}
        entry["waivers"] = accepted_waivers(evidence)
        if qid == "Q1":
            entry["status"], entry["answer"] = _answer(
                by_id, ids, evidence,
                "YES, or not disproven: a check below failed — a developer may reach production.",
                "No. A developer's key is refused by every production host, the developer cannot log in to the "
                "production database, and nothing in development or test can open a connection into production.",
            )  # fmt: skip
            entry["attempts"] = [
                r
                for r in reachability(rows)
                if r.get("destination_env") in prod_envs and r.get("source_env") not in prod_envs
            ]
        elif qid == "Q2":
            entry["status"], entry["answer"] = _answer(
                by_id, ids, evidence,
                "Possibly: a data check below failed.",
                "No. The scan found no live personal data in development or test, and the provenance records "
                "show synthetic data in development and anonymised data in test.",
            )  # fmt: skip
        else:
            entry["status"], entry["answer"] = _answer(
                by_id, ids, evidence,
                "The release record does not hold: a check below failed.",
                "The last release's ledger entries are below, with who approved it and when it reached each "
                "environment; the ledger is hash-chained and signed.",
            )  # fmt: skip
            last = ledger.last
            entry["release"] = last.as_dict() if last else None
            entry["decisions"] = [d for d in signed or [] if last and d["release"] == last.id]
        out.append(entry)
    return out


def policy_section(site: Site) -> dict[str, Any]:
    """The 'Secure Development Policy — environment separation' text, from the site file."""
    envs = []
    for env in site.environments:
        who = {
            level: [p.name for p in site.people if access_level(site, p, env) == level] for level in ("login", "sudo")
        }
        envs.append(
            {
                "name": env.name,
                "tier": env.tier,
                "description": env.description,
                "vlan": env.segment.vlan,
                "cidr": str(env.segment.cidr),
                "data": env.data,
                "login": who["login"],
                "sudo": who["sudo"],
                "hosts": [h.name for h in site.hosts_in(env.name)],
            }
        )
    return {
        "environments": envs,
        "access_networks": [
            {
                "name": a.name,
                "cidr": str(a.cidr),
                "description": a.description,
                "reaches": list(a.reaches),
                "admins_only": a.admins_only,
                "vlan": a.vlan,
            }
            for a in site.access_networks
        ],
        "flows": [f.as_dict() for f in resolved_flows(site)],
        "release_path": list(site.releases.path),
        "required_approvals": site.releases.required_approvals,
        "deploy": {"name": site.deploy.name, "environments": deploy_envs(site)} if site.deploy else None,
        "management": str(site.management.cidr),
    }


def waivers_section(
    site: Site, rows: list[dict[str, Any]], today: dt.date, signed: Collection[str]
) -> list[dict[str, Any]]:
    return [
        {
            **w.model_dump(mode="json"),
            "state": waiver_state(w, today, signed),
            "scope": w.scope_words(),
            "waived_results": [
                f"{r['control']} {check_title(str(r['check']))} ({r['host']})"
                for r in rows
                if r.get("status") == "waived" and w.id in [f.get("id") for f in r.get("waivers") or []]
            ],
        }
        for w in site.waivers
    ]


def live_access(
    site: LoadedSite, state: SiteState, attachments: list[Attachment], hyper: Any
) -> access_matrix.AccessMatrix:
    from provisioner.remote.ssh import Remote

    remote = Remote(state)
    live = {a.machine: a.address for a in attachments if a.managed and a.address}
    readings: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, str] = {}
    for host in site.model.hosts:
        address = live.get(host.name)
        if address is None:
            unreadable[host.name] = "not running live"
            continue
        try:
            readings[host.name] = access_matrix.read_host(remote, address)
        except Exception as exc:  # one unreachable host must not stop the pack; it is reported
            unreadable[host.name] = remote.redactor.text(str(exc))[:300]
    return access_matrix.build_matrix(site.model, readings, unreadable, hyper)


def extra_rows(diffs: list[str], unreadable: dict[str, str], now: str) -> list[dict[str, Any]]:
    """NET-4 (diagram from live state matches the declaration) and DOC-1 (this pack), as result rows.
    DOC-1 fails when part of the live evidence could not be read (a host the access matrix could not reach)."""
    missing = [f"{host}: {why}" for host, why in sorted(unreadable.items())]
    doc_status = "fail" if missing else "pass"
    return [
        {
            "control": "NET-4",
            "check": "live_network_matches_site_file",
            "host": "site",
            "status": "fail" if diffs else "pass",
            "raw_status": "fail" if diffs else "pass",
            "expected": "every live segment and machine is declared in the site file, at its declared address",
            "observed": "; ".join(diffs) if diffs else "live state matches the site file",
            "evidence": "\n".join(diffs) or "diagram drawn from the backend's live segments and attachments",
            "rows": [],
            "time": now,
            "origin": "report",
        },
        {
            "control": "DOC-1",
            "check": "evidence_pack_generated",
            "host": "site",
            "status": doc_status,
            "raw_status": doc_status,
            "expected": "results, diagram, matrices, releases, waivers, policy; a checksum manifest and its signature",
            "observed": "access not read from: " + "; ".join(missing)
            if missing
            else "generated from the latest verify run and live state; MANIFEST.sha256 signed",
            "evidence": "see MANIFEST.sha256 and MANIFEST.sha256.sig in this pack",
            "rows": [],
            "time": now,
            "origin": "report",
        },
    ]


def assemble(
    site: Site,
    run: SignedRun,
    live_segments: set[str],
    attachments: list[Attachment],
    matrix: access_matrix.AccessMatrix,
    ledger: releases.Ledger,
    verify_history: list[dict[str, Any]],
    today: dt.date | None = None,
    backend_name: str = "",
    site_source: str = "",
) -> dict[str, Any]:
    """The report's data: pure (but for checking the decisions' signatures with ssh-keygen), so it can be built
    from a recorded results.json in tests. `run` is the verify run, its signature checked; `site_source` names the
    site file in the policy."""
    payload = run.payload
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    today = today or dt.datetime.now(dt.UTC).date()
    signed_waiver_ids = decisions_signed_waivers(ledger.entries, site)
    rows = apply_waivers(payload["results"], site, today, signed_waiver_ids)
    net_matrix = reachability(rows)
    drawn = diagram.build_diagram(site, live_segments, attachments, net_matrix)
    rows = [*rows, *extra_rows(drawn.differences, matrix.unreadable, now)]
    for row in rows:  # auditors read what a check proves, never its function name
        row["title"] = check_title(str(row["check"]))
    controls = controls_section(rows, _catalogue(payload))
    signed, left_out = decisions.signed_decisions(ledger.entries, site)
    return {
        "site": site.site,
        "description": site.description,
        "backend": backend_name,
        "generated": now,
        "verify_run": run.run,
        "verify_finished": run.finished,
        "verify_results": run.as_dict(),  # the run, its results' SHA-256 and the fingerprint of their signer
        "verify_run_files": {RESULTS_FILE: run.data, SIGNATURE_FILE: run.signature.encode()},
        "ok": not any(r["status"] == "fail" for r in rows),
        "questions": questions(site, rows, controls, ledger, signed),
        "controls": controls,
        "results": rows,
        "reachability": net_matrix,
        "access": matrix.as_dict(),
        "live": {
            "segments": sorted(live_segments),
            "attachments": [a.__dict__ for a in attachments],
            "differences": drawn.differences,
        },
        "diagram_svg": drawn.svg,
        "diagram_dot": drawn.dot,
        "releases": {
            "summary": ledger.summary,
            "problems": ledger.problems,
            "releases": [r.as_dict() for r in ledger.releases],
        },
        "decisions": signed,
        "decisions_left_out": left_out,
        "signers": decisions.people_keys(site),
        "waivers": waivers_section(site, rows, today, signed_waiver_ids),
        "policy": policy_section(site),
        "policy_document": policy_doc.build(site, site_source),
        "history": verify_history,
        "trend_svg": history.trend_svg(verify_history),
    }


def period_section(site: Site, state: SiteState, span: period.Period) -> dict[str, Any]:
    """The verification history over `span`, checked first: timelines, scheduled runs, failure windows, blocked
    attempts and the history check (see report.period)."""
    chain = history.VerifyHistory(state)
    for _ in range(3):  # a run appended while the history is read: read it again, so entries and check agree
        before = chain.fingerprint()
        problems, entries = chain.problems(), chain.numbered_entries()
        if chain.fingerprint() == before:
            break
    by_report = report_controls()
    section = period.build(
        entries,
        problems,
        span,
        control_ids=[cid for cid in catalogue_ids() if cid not in by_report],
        intervals={cid: s for cid, s in intervals_by_control(site).items() if cid not in by_report},
        grace=site.watch.grace_seconds if site.watch else period.DEFAULT_GRACE,
        schedules=[
            period.Schedule(s.name, s.seconds, list(s.controls) or ["every control"]) for s in site.watch.schedules
        ]
        if site.watch
        else [],
        questions=QUESTIONS,
    )
    return {**section, "checked_by_report": by_report}


def report_controls() -> list[str]:
    """The controls `provision report` checks itself (extra_rows), never a verify run: they have no timeline."""
    return [row["control"] for row in extra_rows([], {}, "")]


def with_period(report: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """The report with the period's section and its timeline picture."""
    return {**report, "period": section, "period_svg": timeline_svg.render(section)}


def collect(site: LoadedSite, state: SiteState) -> dict[str, Any]:
    """Read the latest verify run and live state for a site."""
    from provisioner.backends import backend_for

    run = latest_verify_run(state)
    backend = backend_for(site, state)
    backend.preflight()
    live_segments = set(backend.discover().segments)
    attachments = backend.attachments()
    hyper = backend.hypervisor_access()
    matrix = live_access(site, state, attachments, hyper)
    ledger = releases.read_ledger(state.evidence_dir)
    if ledger.present:  # the chain, signatures and head, as `provision release verify-ledger` checks them
        from provisioner.releases.ledger import Ledger

        ledger.problems.extend(f"integrity: {p}" for p in Ledger(state).problems())
    return assemble(
        site.model, run, live_segments, attachments, matrix, ledger, history.read_history(state),
        backend_name=backend.name, site_source=policy_doc.source_of(site.path),
    )  # fmt: skip
