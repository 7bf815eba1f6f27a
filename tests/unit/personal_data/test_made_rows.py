"""Rows the tool made, kept by provenance: the fingerprints beside a seed or refresh record, which of them the
scan uses for a database (the writes since its last scrub), and a file that was changed counts for nothing."""

from __future__ import annotations

from pathlib import Path

from helpers import EXAMPLE

from provisioner.personal_data import made_rows, records, service
from provisioner.site.load import load_site
from provisioner.workspace.site_state import SiteState

ROWS = [("1", "Ada Lovelace", "ada.1@example.invalid", None), ("2", "Alan Turing", "alan.2@example.invalid", "x")]


def made_record(state: SiteState, kind: str, env: str, host: str, rows: list, time: str) -> dict:
    """A seed/refresh record as service.seed writes it, with the fingerprints of `rows` in table customers."""
    record = records.new_record(kind, env, host=host)
    record["time"] = time
    made = made_rows.MadeRows(service.data_key(state))
    made.add("customers", rows)
    record["made_rows"] = made_rows.write(records.data_dir(state), record["id"], made)
    records.write_record(state, record)
    return record


def host(site, name: str):
    return next(h for h in site.hosts if h.name == name)


def test_the_fingerprints_round_trip_and_are_named_in_the_record(tmp_path: Path):
    made = made_rows.MadeRows(b"key")
    made.add("customers", ROWS)
    made.add("orders", [("1", "1", "Oak desk")])
    kept = made_rows.write(tmp_path, "seed-dev-1", made)
    assert kept["file"] == "seed-dev-1.rows" and kept["rows"] == {"customers": 2, "orders": 1}
    text = (tmp_path / "seed-dev-1.rows").read_text()
    assert "Ada" not in text and "example.invalid" not in text, "fingerprints only, never a value"
    loaded = made_rows.load(tmp_path, {"made_rows": kept}, b"key")
    assert loaded is not None and loaded.digests == made.digests
    assert all(loaded.made("customers", row) for row in ROWS)


def test_a_changed_or_missing_file_exempts_nothing(tmp_path: Path):
    made = made_rows.MadeRows(b"key")
    made.add("customers", ROWS)
    kept = made_rows.write(tmp_path, "seed-dev-1", made)
    path = tmp_path / kept["file"]
    forged = made_rows.MadeRows(b"key")
    forged.add("customers", [("9", "Margaret Thornton", "m@example.invalid", None)])
    path.write_text(path.read_text() + forged.text())  # a row added to the list after the seed
    assert made_rows.load(tmp_path, {"made_rows": kept}, b"key") is None
    path.unlink()
    assert made_rows.load(tmp_path, {"made_rows": kept}, b"key") is None
    assert made_rows.load(tmp_path, {"id": "seed-dev-0"}, b"key") is None, "a record of before this change"


def test_the_scan_uses_the_writes_of_that_database_since_its_last_scrub(tmp_path: Path):
    site = load_site(EXAMPLE).model
    state = SiteState("example", tmp_path / "state")
    dev, test = site.environment("dev"), site.environment("test")
    dev_db, test_db = host(site, "dev-db1"), host(site, "test-db1")
    assert service.made_rows_of(state, dev, dev_db) is None, "nothing seeded yet"

    first = [ROWS[0]]
    made_record(state, "seed", "dev", "dev-db1", first, "2026-01-01T10:00:00+00:00")
    made_record(state, "seed", "test", "test-db1", [ROWS[1]], "2026-01-01T10:00:01+00:00")
    found = service.made_rows_of(state, dev, dev_db)
    assert found is not None and found.made("customers", ROWS[0]) and not found.made("customers", ROWS[1])
    other = service.made_rows_of(state, test, test_db)
    assert other is not None and other.made("customers", ROWS[1]) and not other.made("customers", ROWS[0])

    scrub = records.new_record("scrub", "dev", host="dev-db1")
    scrub["time"] = "2026-01-02T10:00:00+00:00"
    records.write_record(state, scrub)
    assert service.made_rows_of(state, dev, dev_db) is None, "a scrub emptied the database: nothing is the tool's"

    made_record(state, "refresh", "dev", "dev-db1", [ROWS[1]], "2026-01-03T10:00:00+00:00")
    after = service.made_rows_of(state, dev, dev_db)
    assert after is not None and after.made("customers", ROWS[1]) and not after.made("customers", ROWS[0])


def test_rows_made_with_another_key_are_not_recognised(tmp_path: Path):
    site = load_site(EXAMPLE).model
    state = SiteState("example", tmp_path / "state")
    made_record(state, "seed", "dev", "dev-db1", ROWS, "2026-01-01T10:00:00+00:00")
    key_file = state.secrets_dir / service.DATA_KEY
    key_file.write_text("another controller's key")
    found = service.made_rows_of(state, site.environment("dev"), host(site, "dev-db1"))
    assert found is not None and not any(found.made("customers", row) for row in ROWS)
