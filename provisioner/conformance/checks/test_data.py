"""DATA-1..3: personal data outside production, provenance of the data, authorised and scrubbed refreshes.

On a freshly applied site the databases outside production are empty: DATA-1 scans them (clean), DATA-2
reports that they hold no data (nothing of unknown origin) and DATA-3 that no refresh was made. As soon as
a table exists, DATA-2 wants its provenance record, and matching the environment's data rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from provisioner.conformance import data_reader
from provisioner.personal_data import service
from provisioner.personal_data.folders import read_tree
from provisioner.releases.decisions import decision_problems
from provisioner.releases.ledger import Ledger


def _non_production(lab):
    return [e for e in lab.model.environments if e.tier != "production"]


def pytest_generate_tests(metafunc):
    if "data_env_name" in metafunc.fixturenames:
        from provisioner.conformance.plugin import _lab

        if not metafunc.config.getoption("--provision-site"):
            return
        names = [e.name for e in _non_production(_lab(metafunc.config))]
        metafunc.parametrize("data_env_name", names, ids=names)


@contextmanager
def _reader(lab, evidence, env_name: str) -> Iterator[Callable | None]:
    """How this environment's databases are read: from the controller's probe on its segment, over the wire, where
    the backend has one; else as postgres over SSH on the host (said in the evidence)."""
    env = lab.model.environment(env_name)
    if not any("db" in h.roles for h in lab.model.hosts_in(env.name)):
        yield None
        return
    point = lab.backend.probe_point(env.name)
    if point is None:
        evidence.note(
            f"{env.name}: this backend gives the controller no probe on the segment; the databases were read as "
            "postgres over SSH on their host, where its root decides what the reading prints"
        )
        yield None
        return
    password = data_reader.reader_password(lab.state.secrets_dir, env)
    with point.attached():
        yield data_reader.from_probe(point, password)


def _folders_from_the_hypervisor(lab):
    """Each host's data folders read through the hypervisor's view of the machine, where the backend gives one."""

    def read(host, folders, limit):
        with lab.backend.machine_root(host.name) as root:
            if root is None:
                return None
            return read_tree(root, folders, limit), "by the controller through the hypervisor's view of the machine"

    return read


@pytest.mark.control("DATA-1")
@pytest.mark.waits(1.0)
def test_no_personal_data_outside_production(lab, evidence, data_env_name):
    with _reader(lab, evidence, data_env_name) as reader:
        report = service.scan(lab.site, data_env_name, reader=reader, folder_reader=_folders_from_the_hypervisor(lab))
    tables = [s for s in report["sources"] if s["kind"] == "table"]
    files = [s for s in report["sources"] if s["kind"] == "file"]
    evidence.expect(
        f"no personal data in {data_env_name}: no detector hit outside the rows the last seed or refresh wrote "
        "(known by their recorded fingerprints, not by what they hold), "
        "no value matching a production fingerprint"
    )
    for host, how in sorted(report["read"].items()):
        if "database" in how:
            evidence.note(f"{host}'s database read {how['database']}")
        evidence.note(f"{host}'s data folders read {how['folders']}")
    evidence.note(
        f"{len(tables)} table(s), {sum(s.get('rows_scanned', 0) for s in tables)} sampled row(s) "
        f"(budget {report['sample_rows']} per table), {len(files)} file(s) under {', '.join(report['folders'])}; "
        f"{report['production_fingerprints']} production fingerprints; record {report.get('file', '')}"
    )
    for finding in report["findings"]:
        evidence.row(**finding)
    listed = "; ".join(
        f"{f['host']}:{f['source']}.{f['column']}: {f['count']} {f['detector']}" for f in report["findings"]
    )
    evidence.observe(listed or "clean")
    assert not report["findings"], f"personal data in {data_env_name}: {listed}"


@pytest.mark.control("DATA-2")
@pytest.mark.waits(1.0)
def test_data_provenance_matches_the_data_rule(lab, evidence, data_env_name):
    env = lab.model.environment(data_env_name)
    hosts = [h for h in lab.model.hosts_in(env.name) if "db" in h.roles]
    if not hosts:
        pytest.skip(f"{env.name} holds no database")
    evidence.expect(
        f"{env.name} (data rule '{env.data}'): every database is empty or holds data whose provenance record "
        f"allows it ({', '.join(service.ALLOWED_KINDS.get(env.data, ()))})"
    )
    problems = []
    with _reader(lab, evidence, env.name) as reader:
        found_per_host = [(host, service.provenance(lab.site, env, host, reader)) for host in hosts]
    for host, found in found_per_host:
        evidence.note(f"{host.name} read {found['read']}")
        record = found["record"] or {}
        evidence.row(
            host=host.name,
            tables=found["tables"],
            provenance=found["stamp"]["kind"] if found["stamp"] else None,
            record=record.get("id"),
            seed=record.get("seed"),
            authorisation=(record.get("authorisation") or {}).get("id"),
        )
        if not found["tables"] and found["stamp"] is None:
            evidence.note(f"{host.name}: holds no data (no tables), so there is nothing of unknown origin")
        problems += [f"{host.name}: {p}" for p in found["problems"]]
    evidence.observe("; ".join(problems) or "as declared")
    assert not problems, "; ".join(problems)


@pytest.mark.control("DATA-3")
def test_refreshes_are_authorised_and_scrubbed_in_time(lab, evidence):
    from provisioner.personal_data import records

    today = dt.date.today()
    refreshes = records.records(lab.state, kind="refresh")
    entries = Ledger(lab.state).entries()
    broken = decision_problems(entries)
    signed = {(str(e.get("subject")), str(e.get("actor"))) for e in entries
              if e.get("event") == "data-authorise" and e.get("seq") not in broken}  # fmt: skip
    evidence.expect(
        "every refresh names an authorisation approved, and signed, by someone other than its requester; "
        "none is left unscrubbed past its deadline"
    )
    problems = []
    for record in refreshes:
        auth = record.get("authorisation") or {}
        evidence.row(
            record=record["id"],
            environment=record["environment"],
            authorisation=auth.get("id"),
            requester=auth.get("requester"),
            approver=auth.get("approver"),
            reason=auth.get("reason"),
            scrub_by=record.get("scrub_by"),
        )
        if not auth.get("id") or not auth.get("requester") or not auth.get("approver"):
            problems.append(f"{record['id']}: no authorisation recorded")
        elif auth["requester"] == auth["approver"]:
            problems.append(f"{record['id']}: approved by its own requester {auth['requester']}")
        elif (auth["id"], auth["approver"]) not in signed:
            problems.append(f"{record['id']}: authorisation {auth['id']} carries no signature of {auth['approver']}")
    for env in _non_production(lab):
        for record in service.overdue(service.outstanding_refreshes(lab.state, env.name), today):
            problems.append(f"{record['id']}: {env.name} not scrubbed by {record['scrub_by']} (today {today})")
    evidence.note(f"{len(refreshes)} refresh(es) recorded")
    evidence.observe(
        "; ".join(problems) or ("no refresh of production data recorded" if not refreshes else "all in order")
    )
    assert not problems, "; ".join(problems)
