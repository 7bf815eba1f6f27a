"""Test data on a real LXC lab with real PostgreSQL: seed, scan, authorised refresh, a leak, an overdue scrub.

On the shared lab; the scenarios run in order on it, and the last leaves every data control passing.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_KEYS, assert_clean, ensure_applied

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(1800)]

# A real-looking customer of production: none of these strings may ever appear in anything the tool writes.
REAL = {
    "id": "9001",
    "full_name": "Margaret Thornton",
    "email": "margaret.thornton@btinternet.com",
    "phone": "+44 7911 123456",
    "street": "14 Larkspur Road",
    "city": "Leeds",
    "postcode": "LS6 2QT",
    "date_of_birth": "1961-03-14",
    "iban": "GB82WEST12345698765432",
    "created_at": "2025-06-01 10:00:00+00",
}
SECRET_VALUES = [REAL[k] for k in ("full_name", "email", "phone", "street", "iban")]
COLUMNS = list(REAL)
FULL_RULES = {
    "customers": {
        "full_name": "fake:name",
        "email": "fake:email",
        "phone": "fake:phone",
        "street": "fake:street",
        "city": "keep",
        "postcode": "fake:postcode",
        "date_of_birth": "fake:date",
        "iban": "null",
    }
}
AUTH = "CHG-2041"


def psql(container: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["lxc-attach", "-n", container, "--", "runuser", "-u", "postgres", "--",
         "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "app"],
        input=sql, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def db(lab, env: str) -> str:
    return f"{lab.site.name}-{env}-db1"


def app(lab, env: str) -> str:
    return f"{lab.site.name}-{env}-app1"


def insert_sql(row: dict[str, str]) -> str:
    values = ", ".join("'" + row[c].replace("'", "''") + "'" for c in COLUMNS)
    return f"INSERT INTO customers ({', '.join(COLUMNS)}) VALUES ({values});\n"


def production_rows() -> list[dict[str, str]]:
    from faker import Faker

    faker = Faker("en_GB")
    faker.seed_instance(4242)
    rows = [REAL]
    for index in range(1, 41):
        rows.append(
            {
                "id": str(index),
                "full_name": faker.name(),
                "email": faker.free_email(),
                "phone": f"+44 7{faker.random_int(400, 999)} {faker.random_int(100000, 999999)}",
                "street": faker.street_address().replace("\n", ", "),
                "city": faker.city(),
                "postcode": faker.postcode(),
                "date_of_birth": faker.date_of_birth(minimum_age=18).isoformat(),
                "iban": faker.iban(),
                "created_at": "2025-01-01 00:00:00+00",
            }
        )
    return rows


def write_site(lab, rules: dict, scrub_by: dt.date | None = None) -> None:
    data = yaml.safe_load(lab.site_file.read_text())
    data["test_data"] = {
        "seed": 8031,
        "customers": 150,
        "rules": rules,
        "authorisations": [
            {
                "id": AUTH,
                "from": "prod",
                "to": "test",
                "requester": "alice",
                "approver": "erin",
                "reason": "reproduce the invoice rounding bug with production-shaped data",
                "scrub_by": (scrub_by or dt.date.today() + dt.timedelta(days=14)).isoformat(),
            }
        ],
        "scan": {"sample_rows": 5000, "folders": ["/srv/data"]},
    }
    lab.site_file.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def lab(shared_lab):
    lab = shared_lab
    ensure_applied(lab)
    write_site(lab, {"customers": {k: v for k, v in FULL_RULES["customers"].items() if k != "phone"}})
    made = psql(
        db(lab, "prod"),
        "CREATE TABLE customers (id integer primary key, full_name text, email text, phone text, street text, "
        "city text, postcode text, date_of_birth date, iban text, created_at timestamptz);\n"
        "CREATE TABLE orders (id integer primary key, customer_id integer, product text, amount numeric(10,2));\n"
        + "".join(insert_sql(r) for r in production_rows())
        + "INSERT INTO orders SELECT g, 1 + g % 40, 'Oak desk', 199.00 FROM generate_series(1, 100) g;\n",
    )
    assert made.returncode == 0, made.stderr
    yield lab
    assert_clean(lab)  # the site file keeps its test_data section: the records written here refer to it


def data(lab, *args: str):
    return lab.cli("data", *args, str(lab.site_file), "--json")


def verify_data(lab) -> tuple[int, dict]:
    result = lab.cli("verify", str(lab.site_file), "-k", "test_data", "--json")
    assert result.stdout, result.stderr
    return result.rc, result.json


def failed(report: dict) -> set[str]:
    return {cid for cid, counts in report["controls"].items() if counts["fail"]}


def assert_nowhere(lab, *outputs: str) -> None:
    """No real value in what the commands printed, nor in any file of the site state (evidence, runs)."""
    for value in SECRET_VALUES:
        for text in outputs:
            assert value not in text, f"a production value was printed: {value[:3]}…"
        for path in Path(lab.state_dir).rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), f"a production value is in {path}"


def test_fresh_lab_data_controls_pass_with_a_reason(lab):
    rc, report = verify_data(lab)
    assert rc == 0, report["failures"]
    assert set(report["controls"]) == {"DATA-1", "DATA-2", "DATA-3"}
    assert all(c["pass"] > 0 and c["fail"] == 0 for c in report["controls"].values()), report["controls"]


def test_seeded_dev_is_reproducible_and_scans_clean(lab):
    first = data(lab, "seed", "--env", "dev")
    assert first.rc == 0, first.stderr
    again = data(lab, "seed", "--env", "dev")
    assert again.rc == 0, again.stderr
    digests = [{t["name"]: t["content_sha256"] for t in r.json["tables"]} for r in (first, again)]
    assert digests[0] == digests[1], "the same seed gives the same data"
    assert Path(again.json["file"]).parent == lab.state.evidence_dir / "data"
    stamp = psql(db(lab, "dev"), "SELECT record, kind FROM provisioner_provenance;").stdout.strip()
    assert stamp == f"{again.json['id']}|seed"
    emails = psql(db(lab, "dev"), "SELECT count(*) FROM customers WHERE email LIKE '%@example.invalid';")
    assert emails.stdout.strip() == "150"
    # the rows the seed wrote, read back and fingerprinted beside its record: how the scan knows them
    assert again.json["made_rows"]["rows"] == {"customers": 150, "orders": 450}
    assert (lab.state.evidence_dir / "data" / again.json["made_rows"]["file"]).is_file()
    scan = data(lab, "scan", "--env", "dev")
    assert scan.rc == 0, scan.stdout + scan.stderr
    assert scan.json["clean"] and scan.json["production_fingerprints"] > 100
    known = {s["source"]: s["synthetic_rows"] for s in scan.json["sources"] if s["kind"] == "table"}
    assert known == {"customers": 150, "orders": 450}, "every seeded row, by provenance"


def test_example_invalid_exempts_no_row_an_edited_seeded_row_is_scanned(lab):
    """A seeded row edited to hold a real name, and a real customer given an example.invalid e-mail: the scan
    finds both, though both rows hold the reserved domain (issue 18: rows are exempt by provenance only)."""
    edited = psql(db(lab, "dev"), f"UPDATE customers SET full_name = '{REAL['full_name']}' WHERE id = 7;")
    assert edited.returncode == 0, edited.stderr
    disguised = {**REAL, "email": "margaret.thornton@example.invalid"}
    added = psql(db(lab, "dev"), insert_sql(disguised))
    assert added.returncode == 0, added.stderr
    try:
        scan = data(lab, "scan", "--env", "dev")
        assert scan.rc == 1, scan.stdout
        found = {(f["source"], f["column"], f["detector"]): f["count"] for f in scan.json["findings"]}
        assert found.get(("customers", "full_name", "person_name")) == 2, found
        assert found.get(("customers", "full_name", "production_fingerprint")) == 2, found
        assert found.get(("customers", "iban", "iban")) == 2, found  # the edited row is scanned whole
        assert ("customers", "email", "email") not in found, "a reserved-domain address is no one's"
        known = {s["source"]: s["synthetic_rows"] for s in scan.json["sources"] if s["kind"] == "table"}
        assert known == {"customers": 149, "orders": 450}
        assert_nowhere(lab, scan.stdout, scan.stderr)
    finally:
        reseeded = data(lab, "seed", "--env", "dev")
        assert reseeded.rc == 0, reseeded.stderr
    assert data(lab, "scan", "--env", "dev").rc == 0


def test_refresh_refuses_without_authorisation_and_with_an_unmasked_column(lab):
    unauthorised = lab.cli("data", "refresh", str(lab.site_file), "--from", "prod", "--to", "test")
    assert unauthorised.rc == 3 and "--authorisation" in unauthorised.stderr
    unsigned = data(lab, "refresh", "--from", "prod", "--to", "test", "--authorisation", AUTH)
    assert unsigned.rc == 3 and "is not signed by its approver erin" in unsigned.json["error"], unsigned.stdout
    signed = lab.cli("data", "authorise", AUTH, "--as", "erin", "--sign-key", str(DEMO_KEYS / "erin"),
                     "--site", str(lab.site_file))  # fmt: skip
    assert signed.rc == 0, signed.stderr
    unmasked = data(lab, "refresh", "--from", "prod", "--to", "test", "--authorisation", AUTH)
    assert unmasked.rc == 3, unmasked.stdout
    assert "customers.phone" in unmasked.json["error"] and "Nothing was copied" in unmasked.json["error"]
    tables = psql(db(lab, "test"), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public';")
    assert tables.stdout.strip() == "0", "a refused refresh touches nothing"
    assert_nowhere(lab, unauthorised.stdout, unauthorised.stderr, unmasked.stdout, unmasked.stderr)


def test_authorised_refresh_is_anonymised_recorded_and_scans_clean(lab):
    write_site(lab, FULL_RULES)
    result = data(lab, "refresh", "--from", "prod", "--to", "test", "--authorisation", AUTH)
    assert result.rc == 0, result.stdout + result.stderr
    record = result.json
    assert record["authorisation"]["requester"] == "alice" and record["authorisation"]["approver"] == "erin"
    rules = {c["name"]: c["rule"] for t in record["tables"] if t["name"] == "customers" for c in t["columns"]}
    assert rules["email"] == "fake:email" and rules["iban"] == "null" and rules["id"] == "keep"
    copied = psql(db(lab, "test"), "SELECT count(*), count(iban) FROM customers;").stdout.strip()
    assert copied == "41|0"
    scan = data(lab, "scan", "--env", "test")
    assert scan.rc == 0, scan.stdout
    assert_nowhere(lab, result.stdout, result.stderr, scan.stdout, scan.stderr)


def test_a_real_row_copied_raw_into_test_fails_the_scan_and_data1_without_showing_it(lab):
    planted = psql(db(lab, "test"), insert_sql(REAL))
    assert planted.returncode == 0, planted.stderr
    export = f"id,name,email\n1,{REAL['full_name']},{REAL['email']}\n"
    folder = subprocess.run(
        ["lxc-attach", "-n", app(lab, "test"), "--", "bash", "-c",
         "mkdir -p /srv/data && cat > /srv/data/export.csv"],
        input=export, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert folder.returncode == 0, folder.stderr
    try:
        scan = data(lab, "scan", "--env", "test")
        assert scan.rc == 1, scan.stdout
        found = {(f["source"], f["column"], f["detector"]): f["count"] for f in scan.json["findings"]}
        for column, detector in (
            ("email", "email"),
            ("phone", "phone"),
            ("full_name", "person_name"),
            ("iban", "iban"),
            ("email", "production_fingerprint"),
            ("full_name", "production_fingerprint"),
        ):
            assert found.get(("customers", column, detector)) == 1, (column, detector, found)
        assert found.get(("/srv/data/export.csv", "line", "email")) == 1, found
        human = lab.cli("data", "scan", str(lab.site_file), "--env", "test")
        assert human.rc == 1 and "customers" in human.stdout and "email" in human.stdout
        rc, report = verify_data(lab)
        assert rc == 1 and failed(report) == {"DATA-1"}, report["failures"]
        failure = next(f for f in report["failures"] if f["control"] == "DATA-1" and f["host"] == "test")
        assert "customers.email: 1 email" in failure["observed"]
        assert_nowhere(lab, scan.stdout, scan.stderr, human.stdout, human.stderr, json.dumps(report))
    finally:
        psql(db(lab, "test"), f"DELETE FROM customers WHERE id = {REAL['id']};")
        subprocess.run(["lxc-attach", "-n", app(lab, "test"), "--", "rm", "-f", "/srv/data/export.csv"], check=False)


def _swap(container: str, program: str, liar: str) -> None:
    """As root in the container: the program moved aside and a liar put in its place."""
    swapped = subprocess.run(
        ["lxc-attach", "-n", container, "--", "sh", "-c",
         f"mv {program} {program}.real && cat > {program} && chmod 755 {program}"],
        input=liar, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert swapped.returncode == 0, swapped.stderr


def _restore(container: str, program: str) -> None:
    subprocess.run(["lxc-attach", "-n", container, "--", "mv", "-f", f"{program}.real", program],
                   check=False, timeout=30)  # fmt: skip


def test_a_root_developer_whose_programs_lie_does_not_fool_verify(lab):
    """Root in development plants a production row in dev-db1 and a production export in dev-app1's data folder,
    then makes dev-db1's psql print nothing and dev-app1's sudo print an empty listing: any reading done by the
    hosts' own programs (as `provision data scan` does over SSH) finds nothing. verify reads the database over the
    wire from the controller's probe and the folder through the hypervisor's view of the container, and finds
    both."""
    database, app_host = db(lab, "dev"), app(lab, "dev")
    planted = psql(database, "CREATE TABLE leads (id integer, full_name text, email text);\n"
                   f"INSERT INTO leads VALUES (1, '{REAL['full_name']}', '{REAL['email']}');\n")  # fmt: skip
    assert planted.returncode == 0, planted.stderr
    export = f"id,name,email\n1,{REAL['full_name']},{REAL['email']}\n"
    folder = subprocess.run(
        ["lxc-attach", "-n", app_host, "--", "sh", "-c", "mkdir -p /srv/data && cat > /srv/data/leads.csv"],
        input=export, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert folder.returncode == 0, folder.stderr
    _swap(database, "/usr/bin/psql", "#!/bin/sh\ncat > /dev/null\nexit 0\n")
    _swap(app_host, "/usr/bin/sudo", "#!/bin/sh\necho '[]'\n")
    try:
        on_the_hosts = data(lab, "scan", "--env", "dev")
        assert on_the_hosts.rc == 0 and on_the_hosts.json["clean"], "the lies did not take: the test proves nothing"
        sources = on_the_hosts.json["sources"]
        assert not [s for s in sources if s["kind"] == "table" or s["host"] == "dev-app1"], sources
        rc, report = verify_data(lab)
        assert rc == 1 and "DATA-1" in failed(report), report["failures"]
        failure = next(f for f in report["failures"] if f["control"] == "DATA-1" and f["host"] == "dev")
        assert "dev-db1:leads.email: 1 email" in failure["observed"], failure
        assert "dev-app1:/srv/data/leads.csv.line" in failure["observed"], failure
        assert "dev-db1's database read over the wire from the controller's probe" in failure["evidence"], failure
        assert "dev-app1's data folders read by the controller through the hypervisor's view" in failure["evidence"]
        assert_nowhere(lab, on_the_hosts.stdout, json.dumps(report))
    finally:
        _restore(database, "/usr/bin/psql")
        _restore(app_host, "/usr/bin/sudo")
        psql(database, "DROP TABLE IF EXISTS leads;")
        subprocess.run(["lxc-attach", "-n", app_host, "--", "rm", "-f", "/srv/data/leads.csv"], check=False)
    rc, report = verify_data(lab)
    assert rc == 0, report["failures"]


def test_a_reader_the_database_refuses_fails_the_data_checks_never_passes_them(lab):
    """Root on dev-db1 takes the reader's grant away: verify cannot read, and says so as a failure, not as clean."""
    container = db(lab, "dev")
    revoked = psql(container, "REVOKE pg_read_all_data FROM provisioner_reader;")
    assert revoked.returncode == 0, revoked.stderr
    try:
        rc, report = verify_data(lab)
        assert rc != 0, "a database the controller could not read passed"
        dev = [f for f in report["failures"] if f["control"] in ("DATA-1", "DATA-2") and f["host"] == "dev"]
        assert dev and all("SQLSTATE 42501" in json.dumps(f) for f in dev), report["failures"]
    finally:
        psql(container, "GRANT pg_read_all_data TO provisioner_reader;")
    rc, report = verify_data(lab)
    assert rc == 0, report["failures"]


def test_overdue_scrub_fails_data3_until_scrubbed_and_unknown_tables_fail_data2(lab):
    from provisioner.personal_data import records

    (refresh,) = records.records(lab.state, kind="refresh")
    path = Path(refresh.pop("_file"))
    refresh["scrub_by"] = (dt.date.today() - dt.timedelta(days=1)).isoformat()  # as if the deadline had passed
    path.write_text(json.dumps(refresh))
    rc, report = verify_data(lab)
    assert rc == 1 and failed(report) == {"DATA-3"}, report["failures"]
    assert "not scrubbed by" in next(f for f in report["failures"] if f["control"] == "DATA-3")["observed"]
    scrubbed = data(lab, "scrub", "--env", "test")
    assert scrubbed.rc == 0 and scrubbed.json["scrubbed_refreshes"] == [refresh["id"]]
    psql(db(lab, "test"), "CREATE TABLE leads (id integer, note text);")
    rc, report = verify_data(lab)
    assert rc == 1 and failed(report) == {"DATA-2"}, report["failures"]
    assert "unknown origin" in next(f for f in report["failures"] if f["control"] == "DATA-2")["observed"]
    psql(db(lab, "test"), "DROP TABLE leads;")
    rc, report = verify_data(lab)
    assert rc == 0, report["failures"]
