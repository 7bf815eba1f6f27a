"""The scan engine: a pure function over rows, so it is benchmarked and tested without a database.

Per column, cheap prefilters decide which detectors a value could interest (an '@' for e-mail, a digit for
numbers, a space and a capital for names); only then does a validator run. Rows that carry the synthetic
marker (an e-mail in the reserved domain) are exempt from the pattern detectors, never from the production
fingerprints: a real name kept next to a faked e-mail is still found. Findings carry counts, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from provisioner.testdata.detectors import DETECTORS, SYNTHETIC_DOMAIN, Detector
from provisioner.testdata.fingerprints import Fingerprints

FINGERPRINT = "production_fingerprint"
# column types whose values are never personal data of the kinds detected
SKIPPED_TYPES = (
    "boolean", "date", "timestamp", "time", "interval", "uuid", "numeric", "real", "double precision",
    "smallint", "integer", "money", "oid", "bytea",
)  # fmt: skip
_NUMBERS_AND_DATES = re.compile(
    r"^[-+]?\d{1,6}(?:[.,]\d+)?$|^\d{4}-\d{2}-\d{2}(?:[ T][\d:.]+(?:[+-]\d\d(?::?\d\d)?|Z)?)?$"
)
_HAS_DIGIT = re.compile(r"\d").search
_HAS_UPPER_AFTER_SPACE = re.compile(r"[A-Z][a-z]+ [A-Z]").search

_BY_NAME = {d.name: d for d in DETECTORS}
_AT = (_BY_NAME["email"],)
_DIGITS = tuple(_BY_NAME[n] for n in ("phone", "iban", "card", "us_ssn", "uk_nino", "address"))
_NAMES = (_BY_NAME["person_name"],)


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "text"

    @property
    def scanned(self) -> bool:
        return not self.type.startswith(SKIPPED_TYPES)


@dataclass(frozen=True)
class Finding:
    source: str  # table, or host:file
    column: str
    detector: str
    count: int

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "column": self.column, "detector": self.detector, "count": self.count}


@dataclass
class SourceScan:
    source: str
    rows: int
    synthetic_rows: int
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows_scanned": self.rows,
            "synthetic_rows": self.synthetic_rows,
            "findings": [f.as_dict() for f in self.findings],
        }


def _candidates(value: str) -> tuple[Detector, ...]:
    """The prefilter: which detectors could possibly fire on this value."""
    found: tuple[Detector, ...] = ()
    if "@" in value:
        found += _AT
    if _HAS_DIGIT(value) and not _NUMBERS_AND_DATES.match(value):
        found += _DIGITS
    if " " in value and _HAS_UPPER_AFTER_SPACE(value):
        found += _NAMES
    return found


def _detect(value: str, cache: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    hit = cache.get(value)
    if hit is None:
        hit = tuple(d.name for d in _candidates(value) if d.find(value)) if len(value) >= 5 else ()
        if len(cache) < 100_000:
            cache[value] = hit
    return hit


def synthetic_rows(columns: Sequence[Column], rows: Sequence[Sequence[str | None]]) -> set[int]:
    """Indexes of the rows carrying the synthetic marker in any text column."""
    marked: set[int] = set()
    for index, column in enumerate(columns):
        if not column.scanned:
            continue
        for row_index, row in enumerate(rows):
            value = row[index]
            if value and SYNTHETIC_DOMAIN in value:
                marked.add(row_index)
    return marked


def scan_rows(
    source: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str | None]],
    fingerprints: Fingerprints | None = None,
) -> SourceScan:
    """Scan rows (values as text or None) of one table or file; returns counts per column and detector."""
    marked = synthetic_rows(columns, rows)
    counts: Counter[tuple[str, str]] = Counter()
    match_fingerprints = fingerprints is not None and len(fingerprints) > 0
    for index, column in enumerate(columns):
        if not column.scanned:
            continue
        cache: dict[str, tuple[str, ...]] = {}
        fp_cache: dict[str, bool] = {}
        for row_index, row in enumerate(rows):
            value = row[index]
            if not value:
                continue
            if row_index not in marked:
                for name in _detect(value, cache):
                    counts[(column.name, name)] += 1
            if match_fingerprints:
                hit = fp_cache.get(value)
                if hit is None:
                    hit = fingerprints.matches(value)  # type: ignore[union-attr]
                    if len(fp_cache) < 100_000:
                        fp_cache[value] = hit
                if hit:
                    counts[(column.name, FINGERPRINT)] += 1
    findings = [Finding(source, col, det, n) for (col, det), n in sorted(counts.items())]
    return SourceScan(source, len(rows), len(marked), findings)


def scan_text(source: str, text: str, fingerprints: Fingerprints | None = None, max_lines: int = 100_000) -> SourceScan:
    """A data file: each line a row of one column named 'line' (CSV cells are found inside lines)."""
    lines = text.splitlines()[:max_lines]
    return scan_rows(source, [Column("line")], [(line,) for line in lines], fingerprints)
