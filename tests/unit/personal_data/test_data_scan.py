"""The scan engine (a pure function over rows) and the production fingerprints."""

from __future__ import annotations

import hashlib
import hmac
import json

from provisioner.personal_data.fingerprints import Fingerprints, canonical, fingerprint_sql, hmac_reference
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


def test_seeded_synthetic_rows_scan_clean():
    rows = seeded_rows()
    result = scan_rows("customers", COLUMNS, rows)
    assert result.findings == [] and result.synthetic_rows == len(rows) == result.rows


def test_seeded_rows_would_be_found_without_their_marker():
    """The marker is what keeps seeded rows quiet: strip it and the detectors fire (the scan is not blind)."""
    rows = [tuple(v.replace("example.invalid", "gmail.com") if v else v for v in row) for row in seeded_rows(50)]
    found = findings(scan_rows("customers", COLUMNS, rows))
    assert found[("email", "email")] == 50 and found[("full_name", "person_name")] >= 40


def test_one_real_row_among_synthetic_ones_is_named_by_table_column_and_count():
    rows = [*seeded_rows(), REAL]
    result = scan_rows("customers", COLUMNS, rows)
    found = findings(result)
    for column, detector in (("email", "email"), ("phone", "phone"), ("full_name", "person_name"),
                             ("iban", "iban"), ("street", "address"), ("postcode", "address")):  # fmt: skip
        assert found[(column, detector)] == 1, (column, detector, found)
    report = json.dumps(result.as_dict())
    assert all(value not in report for value in REAL[1:7] + REAL[8:9]), "findings never carry a value"


def test_fingerprints_find_a_real_name_kept_next_to_a_faked_email():
    """A row marked synthetic is exempt from the detectors, never from the production fingerprints."""
    fingerprints = Fingerprints(b"k" * 32)
    fingerprints.digests.add(fingerprints.of("Margaret Thornton"))
    rows = seeded_rows(20)
    leaked = (rows[0][0], "Margaret Thornton", *rows[0][2:])
    found = findings(scan_rows("customers", COLUMNS, [*rows, leaked], fingerprints))
    assert found == {("full_name", FINGERPRINT): 1}


def test_non_text_columns_are_not_scanned():
    result = scan_rows("t", [Column("n", "integer"), Column("d", "date")], [("4111111111111111", "x@gmail.com")])
    assert result.findings == []


def test_data_files_are_scanned_line_by_line():
    text = "id,name,email\n1,Margaret Thornton,margaret.thornton@btinternet.com\n2,x,user.2@example.invalid\n"
    fingerprints = Fingerprints(b"k" * 32)
    fingerprints.digests.add(fingerprints.of("margaret.thornton@btinternet.com"))
    found = findings(scan_text("/srv/data/export.csv", text, fingerprints))
    assert found == {("line", "email"): 1, ("line", "person_name"): 1, ("line", FINGERPRINT): 1}


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
