"""Records in the evidence folder and the SQL the data commands send: values round-trip, one transaction."""

from __future__ import annotations

import json

from provisioner.personal_data import records
from provisioner.personal_data.database import encode_copy_value, parse_copy, replace_tables_script
from provisioner.workspace.site_state import SiteState


def test_copy_text_format_round_trips_nulls_tabs_newlines_and_backslashes():
    row = (None, "", "a\tb", "line\nbreak", "back\\slash", "Zoë")
    text = "\t".join(encode_copy_value(v) for v in row) + "\n"
    assert parse_copy(text) == [row]


def test_replacing_tables_is_one_transaction_run_as_the_app_owner_and_stamped():
    script = replace_tables_script(
        [("customers", [("id", "integer"), ("email", "text")], [(1, "x\ty")])], ("rec-1", "seed")
    )
    lines = script.splitlines()
    assert lines[0] == "BEGIN;" and lines[-1] == "COMMIT;"
    assert 'SET LOCAL ROLE "app";' in lines and "1\tx\\ty" in lines
    assert lines.index('SET LOCAL ROLE "app";') > next(i for i, line in enumerate(lines) if "DROP TABLE" in line)
    assert "INSERT INTO provisioner_provenance (record, kind) VALUES ('rec-1', 'seed');" in lines
    assert "provisioner_provenance" not in replace_tables_script([], None)


def test_records_are_kept_in_the_evidence_folder_and_listed_oldest_first(tmp_path):
    state = SiteState("s", tmp_path / "state")
    later = records.new_record("seed", "dev", seed=1)
    later["time"] = "2026-11-24T10:00:00+00:00"
    earlier = records.new_record("refresh", "test", scrub_by="2026-12-01")
    earlier["time"] = "2026-11-23T10:00:00+00:00"
    for record in (later, earlier):
        path = records.write_record(state, record)
        assert path.parent == state.evidence_dir / "data" and json.loads(path.read_text())["id"] == record["id"]
    assert [r["id"] for r in records.records(state)] == [earlier["id"], later["id"]]
    assert [r["id"] for r in records.records(state, kind="seed", environment="dev")] == [later["id"]]
    assert records.find(state, earlier["id"])["kind"] == "refresh" and records.find(state, "nope") is None
    assert later["operator"] and later["id"].startswith("seed-dev-")
