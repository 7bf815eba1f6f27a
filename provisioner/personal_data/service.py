"""The test-data operations behind `provision data`: seed, refresh, scrub, scan; and what DATA-1..3 read.

Every input is checked before anything is touched: a bad environment, a missing or mismatched
authorisation, an unmasked personal column all stop the command with nothing changed.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable
from typing import Any

import faker as faker_package

from provisioner.errors import InputError, ProvisionError, RefusedError, shown
from provisioner.personal_data import made_rows, records
from provisioner.personal_data.anonymise import Anonymiser, looks_personal_by_name, plan, target_type
from provisioner.personal_data.database import Database, DatabaseReader, replace_tables_script
from provisioner.personal_data.detectors import SYNTHETIC_DOMAIN
from provisioner.personal_data.fingerprints import Fingerprints, fingerprint_sql
from provisioner.personal_data.folders import read_folders
from provisioner.personal_data.scan import scan_rows, scan_text
from provisioner.personal_data.seed import generate
from provisioner.releases.decisions import signed_authorisations
from provisioner.releases.ledger import Ledger
from provisioner.site.load import LoadedSite
from provisioner.site.model import DataAuthorisation, Environment, Host, Site
from provisioner.workspace.site_state import SiteState

DATA_KEY = "data-fingerprint-key"  # in the site's secrets folder, mode 0600: never leaves the controller for long
SAMPLE_FOR_PLAN = 2000


# ---- inputs -------------------------------------------------------------------------------------------
def environment(site: Site, name: str, option: str) -> Environment:
    try:
        return site.environment(name)
    except KeyError:
        allowed = ", ".join(e.name for e in site.environments)
        raise InputError(f"{option} {shown(name)}: unknown environment; allowed: {allowed}") from None


def non_production(site: Site, name: str, option: str, why: str) -> Environment:
    env = environment(site, name, option)
    if env.tier == "production":
        allowed = ", ".join(e.name for e in site.environments if e.tier != "production") or "(none)"
        raise InputError(f"{option} {name}: {why}; allowed: {allowed}")
    return env


def db_host(site: Site, env: Environment, option: str) -> Host:
    hosts = [h for h in site.hosts_in(env.name) if "db" in h.roles]
    if not hosts:
        with_db = sorted({h.environment for h in site.hosts if "db" in h.roles})
        raise InputError(
            f"{option} {env.name}: no host with role db there; environments with one: {', '.join(with_db)}"
        )
    return hosts[0]


def applied_state(site: LoadedSite) -> SiteState:
    state = SiteState(site.name)
    if not state.known_hosts.exists():
        raise ProvisionError(f"site '{site.name}' has not been applied here yet: run `provision apply` first")
    return state


def data_key(state: SiteState) -> bytes:
    """The controller's key for fingerprints and hashes (mode 0600), created once; safe when checks race."""
    path = state.secrets_dir / DATA_KEY
    if not path.exists():
        state.ensure()
        state.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{DATA_KEY}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


# ---- seed -------------------------------------------------------------------------------------------------
def seed(
    site: LoadedSite, env_name: str, seed_value: int | None = None, customers: int | None = None
) -> dict[str, Any]:
    model = site.model
    env = non_production(model, env_name, "--env", "production holds live data and is never seeded")
    host = db_host(model, env, "--env")
    state = applied_state(site)
    settings = model.test_data
    seed_value = settings.seed if seed_value is None else seed_value
    customers = settings.customers if customers is None else customers
    tables = generate(seed_value, customers)
    record = records.new_record(
        "seed",
        env.name,
        data_rule=env.data,
        host=host.name,
        database="app",
        generator=f"Faker {faker_package.VERSION} (en_GB)",
        seed=seed_value,
        customers=customers,
        marker=f"e-mail addresses @{SYNTHETIC_DOMAIN}; phone numbers in Ofcom's drama range",
        tables=[
            {"name": t.name, "rows": len(t.rows), "columns": [c for c, _ in t.columns], "content_sha256": t.digest()}
            for t in tables
        ],
    )
    script = replace_tables_script([(t.name, t.columns, t.rows) for t in tables], (record["id"], "seed"))
    database = Database(state, host)
    database.psql(script)
    record["made_rows"] = record_made_rows(state, database, record["id"])
    record["file"] = str(records.write_record(state, record))
    return record


def record_made_rows(state: SiteState, database: Database, record_id: str) -> dict[str, Any]:
    """Read back every table just written, as the scan reads it, and keep each row's fingerprint beside the
    record: the scan then knows these rows, and only these, by provenance (personal_data.made_rows)."""
    made = made_rows.MadeRows(data_key(state))
    for table in database.tables():
        rows, _ = database.read(table)
        made.add(table.name, rows)
    return made_rows.write(records.data_dir(state), record_id, made)


def made_rows_of(state: SiteState, env: Environment, host: Host) -> made_rows.MadeRows | None:
    """The rows the seeds and refreshes of `host`'s database since its last scrub wrote (each replaced every
    table, so in practice the last one's rows); None when there were none. Any of them is the tool's own make."""
    writes: list[dict[str, Any]] = []
    for record in records.records(state, environment=env.name):
        if record.get("kind") == "scrub":
            writes = []
        elif record.get("kind") in ("seed", "refresh") and record.get("host") == host.name:
            writes.append(record)
    found = [made_rows.load(records.data_dir(state), record, data_key(state)) for record in writes]
    made = [m for m in found if m is not None]
    if not made:
        return None
    union = made_rows.MadeRows(made[0].key)
    for each in made:
        for table, digests in each.digests.items():
            union.digests.setdefault(table, set()).update(digests)
    return union


# ---- refresh ----------------------------------------------------------------------------------------------
def check_authorisation(
    site: Site, ref: str | None, source: Environment, target: Environment, today: dt.date
) -> DataAuthorisation:
    declared = ", ".join(a.id for a in site.test_data.authorisations) or "(none declared)"
    if ref is not None and not ref.strip():
        raise InputError(f"--authorisation {shown(ref)}: empty; name an entry of test_data.authorisations; "
                         f"declared: {declared}")  # fmt: skip
    if not ref:
        raise RefusedError(
            "copying production data needs an authorisation: --authorisation REF naming an entry of "
            "test_data.authorisations (requester, approver, reason, scrub_by); "
            f"declared: {declared}. Nothing was copied."
        )
    auth = site.test_data.authorisation(ref)
    if auth is None:
        raise InputError(f"--authorisation {ref}: no such entry in test_data.authorisations; declared: {declared}")
    if auth.approver == auth.requester:
        raise RefusedError(f"authorisation '{ref}' is approved by its own requester '{auth.requester}'")
    if (auth.from_env, auth.to_env) != (source.name, target.name):
        raise RefusedError(
            f"authorisation '{ref}' covers {auth.from_env} -> {auth.to_env}, not {source.name} -> {target.name}. "
            "Nothing was copied."
        )
    if auth.scrub_by < today:
        raise RefusedError(
            f"authorisation '{ref}' ran out: its data had to be scrubbed by {auth.scrub_by.isoformat()}. "
            "Nothing was copied."
        )
    return auth


def refresh(
    site: LoadedSite, from_env: str, to_env: str, authorisation: str | None, today: dt.date | None = None
) -> dict[str, Any]:
    model = site.model
    today = today or dt.date.today()
    source = environment(model, from_env, "--from")
    if source.tier != "production":
        allowed = ", ".join(e.name for e in model.environments if e.tier == "production")
        raise InputError(f"--from {from_env}: only production is refreshed from; allowed: {allowed}")
    target = non_production(model, to_env, "--to", "production is never a refresh target")
    if target.data != "anonymised":
        allowed = ", ".join(e.name for e in model.environments if e.data == "anonymised" and e.tier != "production")
        raise InputError(
            f"--to {to_env}: its data rule is '{target.data}'; anonymised production data goes only to "
            f"environments whose data rule is anonymised: {allowed or '(none)'}"
        )
    auth = check_authorisation(model, authorisation, source, target, today)
    source_host, target_host = db_host(model, source, "--from"), db_host(model, target, "--to")
    state = applied_state(site)
    if auth.id not in signed_authorisations(Ledger(state).entries(), model):
        raise RefusedError(
            f"authorisation '{auth.id}' is not signed by its approver {auth.approver} as the site file states it: "
            f"{auth.approver} runs `provision data authorise {auth.id} --as {auth.approver}` with their own key "
            "(DATA-3). Nothing was copied"
        )
    source_db = Database(state, source_host)
    schema = source_db.tables()
    data = {table.name: source_db.read(table)[0] for table in schema}  # held in memory only, never written
    the_plan = plan(
        [(t.name, t.columns) for t in schema],
        {name: rows[:SAMPLE_FOR_PLAN] for name, rows in data.items()},
        model.test_data.rules,
    )
    if the_plan.unmasked:
        listed = "; ".join(f"{v.table}.{v.column} ({v.why()})" for v in the_plan.unmasked)
        raise RefusedError(
            f"columns that look personal have no anonymiser rule: {listed}. Add one under "
            f"test_data.rules.<table>.<column> in {site.path} (hash | null | keep | replace:<text> | fake:<kind>). "
            "Nothing was copied."
        )
    anonymiser = Anonymiser(data_key(state))
    out_tables = []
    table_records = []
    for table in schema:
        rules = [the_plan.rule_of(table.name, c.name) for c in table.columns]
        columns = [(c.name, target_type(r, c.type)) for c, r in zip(table.columns, rules, strict=True)]
        rows = [
            tuple(anonymiser.apply(r, v, c.type) for r, v, c in zip(rules, row, table.columns, strict=True))
            for row in data[table.name]
        ]
        out_tables.append((table.name, columns, rows))
        table_records.append(
            {
                "name": table.name,
                "rows": len(rows),
                "columns": [
                    {"name": c.name, "rule": r, "looks_personal": v.reasons}
                    for c, r, v in zip(
                        table.columns, rules, [v for v in the_plan.verdicts if v.table == table.name], strict=True
                    )
                ],
            }
        )
    record = records.new_record(
        "refresh",
        target.name,
        data_rule=target.data,
        source=source.name,
        host=target_host.name,
        authorisation={
            "id": auth.id,
            "requester": auth.requester,
            "approver": auth.approver,
            "reason": auth.reason,
            "scrub_by": auth.scrub_by.isoformat(),
            "declared_in": str(site.path),
        },
        scrub_by=auth.scrub_by.isoformat(),
        tables=table_records,
    )
    target_db = Database(state, target_host)
    target_db.psql(replace_tables_script(out_tables, (record["id"], "refresh")))
    del data, out_tables
    record["made_rows"] = record_made_rows(state, target_db, record["id"])
    record["file"] = str(records.write_record(state, record))
    return record


# ---- scrub ------------------------------------------------------------------------------------------------
def scrub(site: LoadedSite, env_name: str) -> dict[str, Any]:
    model = site.model
    env = non_production(model, env_name, "--env", "production is never scrubbed by this tool")
    host = db_host(model, env, "--env")
    state = applied_state(site)
    pending = [r["id"] for r in outstanding_refreshes(state, env.name)]
    record = records.new_record("scrub", env.name, host=host.name, scrubbed_refreshes=pending)
    Database(state, host).psql(replace_tables_script([], None))
    record["file"] = str(records.write_record(state, record))
    return record


def outstanding_refreshes(state: SiteState, env_name: str) -> list[dict[str, Any]]:
    """Refreshes into the environment not followed by a scrub of it."""
    pending: list[dict[str, Any]] = []
    for record in records.records(state, environment=env_name):
        if record["kind"] == "refresh":
            pending.append(record)
        elif record["kind"] == "scrub":
            pending = []
    return pending


def overdue(refreshes: list[dict[str, Any]], today: dt.date) -> list[dict[str, Any]]:
    return [r for r in refreshes if dt.date.fromisoformat(r["scrub_by"]) < today]


# ---- scan -------------------------------------------------------------------------------------------------
def production_fingerprints(site: Site, state: SiteState) -> tuple[Fingerprints, list[str]]:
    """Fingerprints of production's personal columns, computed in production's database; returns what was read."""
    fingerprints = Fingerprints(data_key(state))
    covered = []
    for env in site.environments:
        if env.tier != "production":
            continue
        for host in (h for h in site.hosts_in(env.name) if "db" in h.roles):
            db = Database(state, host)
            for table in db.tables():
                rules = site.test_data.rules.get(table.name, {})
                # personal-looking or masked columns; an explicit keep says "not personal" (and the refresh
                # refuses keep where the detectors find personal values)
                columns = [
                    c.name
                    for c in table.columns
                    if c.scanned and rules.get(c.name, "keep" if not looks_personal_by_name(c.name) else None) != "keep"
                ]
                if not columns:
                    continue
                out = db.psql(fingerprint_sql(table.name, columns) + ";\n", variables=fingerprints.sql_variables())
                fingerprints.digests.update(bytes.fromhex(line) for line in out.split())
                covered.append(f"{host.name}:{table.name}({', '.join(columns)})")
    return fingerprints, covered


# A reading of a host's data folders: (path, text or None for binary) per file, and how they were read; None
# where the reader has no view of that host (then they are read over SSH).
FolderReader = Callable[[Host, list[str], int], tuple[list[tuple[str, str | None]], str] | None]
FOLDERS_OVER_SSH = "over SSH by the python of {host} (its root decides what the reading prints)"


def scan(
    site: LoadedSite,
    env_name: str,
    sample_rows: int | None = None,
    keep_record: bool = True,
    reader: Callable[[Host], DatabaseReader] | None = None,
    folder_reader: FolderReader | None = None,
) -> dict[str, Any]:
    """Scan an environment outside production. Its databases are read by `reader` (verify passes the controller's
    probe), else as postgres over SSH on the host; its data folders by `folder_reader` where it gives a reading
    for the host (verify passes the hypervisor's view of the machine), else over SSH. Each source names how it
    was read."""
    model = site.model
    env = non_production(model, env_name, "--env", "the scan looks for live data outside production")
    state = applied_state(site)
    settings = model.test_data.scan
    budget = sample_rows or settings.sample_rows
    fingerprints, covered = production_fingerprints(model, state)
    sources: list[dict[str, Any]] = []
    how_read: dict[str, dict[str, str]] = {}
    for host in site.model.hosts_in(env.name):
        if "db" in host.roles:
            db: DatabaseReader = reader(host) if reader is not None else Database(state, host)
            how_read.setdefault(host.name, {})["database"] = db.read_as
            made = made_rows_of(state, env, host)
            for table in db.tables():
                rows, total = db.read(table, budget)
                known = made.for_table(table.name) if made is not None else None
                result = scan_rows(table.name, table.columns, rows, fingerprints, known)
                sources.append(
                    {"host": host.name, "kind": "table", "rows_in_table": total, "read": db.read_as, **result.as_dict()}
                )
        limit = settings.max_file_kib * 1024
        reading = folder_reader(host, settings.folders, limit) if folder_reader is not None else None
        if reading is None:
            reading = (read_folders(state, host, settings.folders, limit), FOLDERS_OVER_SSH.format(host=host.name))
        files, files_read_as = reading
        how_read.setdefault(host.name, {})["folders"] = files_read_as
        for path, text in files:
            if text is None:
                sources.append(
                    {"host": host.name, "kind": "file", "source": path, "skipped": "binary", "read": files_read_as}
                )
                continue
            result = scan_text(path, text, fingerprints)
            sources.append({"host": host.name, "kind": "file", "read": files_read_as, **result.as_dict()})
    findings = [{"host": s["host"], "kind": s["kind"], **f} for s in sources for f in s.get("findings", [])]
    report = records.new_record(
        "scan",
        env.name,
        data_rule=env.data,
        sample_rows=budget,
        folders=settings.folders,
        production_fingerprints=len(fingerprints),
        fingerprinted=covered,
        read=how_read,
        sources=sources,
        findings=findings,
        clean=not findings,
    )
    if keep_record:
        report["file"] = str(records.write_record(state, report))
    return report


# ---- provenance (DATA-2) ----------------------------------------------------------------------------------
ALLOWED_KINDS = {"dummy": ("seed",), "anonymised": ("seed", "refresh")}


def provenance(
    site: LoadedSite, env: Environment, host: Host, reader: Callable[[Host], DatabaseReader] | None = None
) -> dict[str, Any]:
    """What the database holds and where it came from, against the environment's data rule (read as `scan` reads)."""
    state = applied_state(site)
    db: DatabaseReader = reader(host) if reader is not None else Database(state, host)
    tables = [t.name for t in db.tables()]
    stamp = db.provenance()
    record = records.find(state, stamp["record"]) if stamp else None
    problems = []
    if tables and stamp is None:
        problems.append(f"{len(tables)} table(s) but no provenance: data of unknown origin")
    if stamp is not None and record is None:
        problems.append(f"the database names record {stamp['record']}, which is not in the evidence folder")
    if stamp is not None and stamp["kind"] not in ALLOWED_KINDS.get(env.data, ()):
        allowed = ", ".join(ALLOWED_KINDS.get(env.data, ())) or "nothing"
        problems.append(f"holds {stamp['kind']} data; the data rule '{env.data}' allows {allowed}")
    if record is not None and record.get("environment") != env.name:
        problems.append(f"record {record['id']} was made for {record.get('environment')}, not {env.name}")
    return {"tables": tables, "stamp": stamp, "record": record, "problems": problems, "read": db.read_as}
