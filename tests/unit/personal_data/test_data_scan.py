"""The scan engine (a pure function over rows) and the production fingerprints."""

from __future__ import annotations

import hashlib
import hmac
import json

from provisioner.personal_data.fingerprints import Fingerprints, canonical, fingerprint_sql, hmac_reference
from provisioner.personal_data.made_rows import MadeRows
from provisioner.personal_data.scan import FINGERPRINT, Column, scan_rows, scan_text
from provisioner.personal_data.seed import CUSTOMER_COLUMNS, generate

REAL = ("9001", "Margaret Thornton", "margaret.thornton@btinternet.com", "+44 7911 123456", "14 Larkspur Road",
        "Leeds", "LS6 2QT", "1961-03-14", "GB82WEST12345698765432", "2025-06-01 10:00:00+00")  # fmt: skip
TYPES = {"integer primary key": "integer", "date": "date", "timestamptz not null": "timestamp with time zone"}
COLUMNS = [Column(name, TYPES.get(kind, "text")) for name, kind in CUSTOMER_COLUMNS]


def seeded_rows(count: int = 300) -> list[tuple[str | None, ...]]:
    customers = generate(8031, count)[0]
    return [tuple(None if v is None else str(v) for v in row) for row in customers.rows]


def findings(result) -> dict[tuple[str, str], int]:
    return {(f.column, f.detector): f.count for f in result.findings}


def seeded(rows: list[tuple[str | None, ...]]) -> MadeRows:
    """What `provision data seed` records of the rows it wrote (read back as the scan reads them)."""
    made = MadeRows(b"controller-data-key")
    made.add("customers", rows)
    return made


def test_seeded_rows_scan_clean_by_provenance():
    rows = seeded_rows()
    result = scan_rows("customers", COLUMNS, rows, made=seeded(rows).for_table("customers"))
    assert result.findings == [] and result.synthetic_rows == len(rows) == result.rows


def test_seeded_rows_without_their_record_are_scanned_like_any_other():
    """Their example.invalid e-mail exempts nothing: without the seed's record the detectors fire on every row
    (the scan is not blind, and content is no pass)."""
    rows = seeded_rows(50)
    result = scan_rows("customers", COLUMNS, rows)
    found = findings(result)
    assert result.synthetic_rows == 0
    assert found[("iban", "iban")] == 50 and found[("full_name", "person_name")] >= 40
    assert ("email", "email") not in found, "an address in the reserved domain is no one's (value by value)"


def test_a_real_row_holding_example_invalid_is_flagged():
    """A real customer whose e-mail was changed to the reserved domain (the old exemption) is found."""
    rows = seeded_rows()
    disguised = (*REAL[:2], "margaret.thornton@example.invalid", *REAL[3:])
    result = scan_rows("customers", COLUMNS, [*rows, disguised], made=seeded(rows).for_table("customers"))
    found = findings(result)
    assert result.synthetic_rows == len(rows), "only the seeded rows are exempt"
    for column, detector in (("full_name", "person_name"), ("phone", "phone"), ("iban", "iban"),
                             ("street", "address"), ("postcode", "address")):  # fmt: skip
        assert found[(column, detector)] == 1, (column, detector, found)


def test_a_seeded_row_edited_to_hold_a_real_name_is_flagged():
    rows = seeded_rows()
    made = seeded(rows)
    edited = (rows[7][0], "Margaret Thornton", *rows[7][2:])  # the same id, e-mail and all: one value changed
    result = scan_rows("customers", COLUMNS, [*rows[:7], edited, *rows[8:]], made=made.for_table("customers"))
    found = findings(result)
    assert result.synthetic_rows == len(rows) - 1
    assert found[("full_name", "person_name")] == 1
    assert found[("iban", "iban")] == 1, "the edited row is scanned whole, its seeded values too"


def test_one_real_row_among_seeded_ones_is_named_by_table_column_and_count():
    rows = seeded_rows()
    result = scan_rows("customers", COLUMNS, [*rows, REAL], made=seeded(rows).for_table("customers"))
    found = findings(result)
    for column, detector in (("email", "email"), ("phone", "phone"), ("full_name", "person_name"),
                             ("iban", "iban"), ("street", "address"), ("postcode", "address")):  # fmt: skip
        assert found[(column, detector)] == 1, (column, detector, found)
    report = json.dumps(result.as_dict())
    assert all(value not in report for value in REAL[1:7] + REAL[8:9]), "findings never carry a value"


def test_rows_of_another_table_or_key_are_not_exempt():
    rows = seeded_rows(20)
    made = seeded(rows)
    assert not any(made.made("orders", row) for row in rows), "fingerprints are per table"
    other = MadeRows(b"another-key")
    other.digests = made.digests
    assert not any(other.made("customers", row) for row in rows), "and keyed: no one forges them without the key"
    assert made.of("customers", ("1", None)) != made.of("customers", ("1", "\\N")), "NULL is not the text \\N"


def test_fingerprints_find_a_real_name_in_seeded_and_edited_rows():
    """Seeded rows skip the pattern detectors, never the production fingerprints."""
    fingerprints = Fingerprints(b"k" * 32)
    rows = seeded_rows(20)
    fingerprints.digests.add(fingerprints.of(str(rows[3][1])))  # as if production held a seeded name
    fingerprints.digests.add(fingerprints.of("Margaret Thornton"))
    leaked = (rows[0][0], "Margaret Thornton", *rows[0][2:])
    result = scan_rows("customers", COLUMNS, [*rows, leaked], fingerprints, seeded(rows).for_table("customers"))
    found = findings(result)
    assert found[("full_name", FINGERPRINT)] == 2
    assert found[("full_name", "person_name")] == 1, "the leaked row is no seeded row"


def test_non_text_columns_are_not_scanned():
    result = scan_rows("t", [Column("n", "integer"), Column("d", "date")], [("4111111111111111", "x@gmail.com")])
    assert result.findings == []


def test_data_files_are_scanned_line_by_line():
    text = "id,name,email\n1,Margaret Thornton,margaret.thornton@btinternet.com\n2,x,user.2@example.invalid\n"
    fingerprints = Fingerprints(b"k" * 32)
    fingerprints.digests.add(fingerprints.of("margaret.thornton@btinternet.com"))
    found = findings(scan_text("/srv/data/export.csv", text, fingerprints))
    assert found == {("line", "email"): 1, ("line", "person_name"): 1, ("line", FINGERPRINT): 1}


def test_a_file_line_holding_example_invalid_is_scanned_whole():
    text = "id,name,email,phone\n7,Margaret Thornton,m.t@example.invalid,+44 7911 123456\n"
    fingerprints = Fingerprints(b"k" * 32)
    fingerprints.digests.add(fingerprints.of("Margaret Thornton"))
    found = findings(scan_text("/srv/data/export.csv", text, fingerprints))
    assert found == {("line", "person_name"): 1, ("line", "phone"): 1, ("line", FINGERPRINT): 1}


def test_fingerprint_pads_are_hmac_sha256_and_canonical_forms_agree():
    key = b"controller-key-0123456789"
    fingerprints = Fingerprints(key)
    assert fingerprints.of(" J.Smith@Mail.COM ") == hmac_reference(key, "jsmith@mail.com")
    assert fingerprints.of("J.Smith@Mail.COM") == hmac.digest(key, b"jsmithmailcom"[:0] + canonical("jsmith@mail.com"),
                                                              hashlib.sha256)[:16]  # fmt: skip
    assert fingerprints.of("GB") is None, "too short to identify anybody"
    assert canonical("+44 7911 123456") == b"447911123456"


def test_fingerprint_sql_sends_pads_as_variables_never_the_key():
    fingerprints = Fingerprints(b"secret-key-material")
    sql = fingerprint_sql("customers", ["email", "full_name"])
    assert "secret-key-material" not in sql and ":'fp_ipad'" in sql and ":'fp_opad'" in sql
    assert '"email"::text' in sql and '"full_name"::text' in sql and "regexp_replace(lower(" in sql
    assert set(fingerprints.sql_variables()) == {"fp_ipad", "fp_opad"}
