"""The scan engine: a pure function over rows, so it is benchmarked and tested without a database.

Per column, cheap prefilters decide which detectors a value could interest (an '@' for e-mail, a digit for
numbers, a space and a capital for names); only then does a validator run. Rows the tool itself wrote (a seed,
an anonymised refresh) are exempt from the pattern detectors, recognised by provenance: the caller passes a test
of each row's whole content against the fingerprints the seed or refresh recorded (personal_data.made_rows).
What a row contains never exempts it: `example.invalid` typed next to a real name is scanned like any other row.
No row is exempt from the production fingerprints. Findings carry counts, never values.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from provisioner.personal_data.detectors import DETECTORS, SYNTHETIC_DOMAIN, Detector
from provisioner.personal_data.fingerprints import Fingerprints

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
    synthetic_rows: int  # rows known, by their recorded fingerprints, as written by the tool's seed or refresh
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


def _detect(value: str) -> tuple[str, ...]:
    if len(value) < 5:
        return ()
    return tuple(d.name for d in _candidates(value) if d.find(value))


Row = Sequence[str | None]


def scan_rows(
    source: str,
    columns: Sequence[Column],
    rows: Sequence[Row],
    fingerprints: Fingerprints | None = None,
    made: Callable[[Row], bool] | None = None,
) -> SourceScan:
    """Scan rows (values as text or None) of one table or file; returns counts per column and detector.
    `made` says which rows the tool wrote itself (by their recorded fingerprints): only those skip the pattern
    detectors.

    Work is per distinct value: each column's values are counted first (in C), then each distinct value
    meets the prefilter, the validators and the fingerprint set once.
    """
    marked = [made(row) for row in rows] if made is not None else [False] * len(rows)
    unmarked = [not m for m in marked]
    counts: Counter[tuple[str, str]] = Counter()
    match = fingerprints.matches if fingerprints is not None and len(fingerprints) > 0 else None
    for index, column in enumerate(columns):
        if not column.scanned:
            continue
        values = [row[index] for row in rows]
        for value, n in Counter(itertools.compress(values, unmarked)).items():
            if value:
                for name in _detect(value):
                    counts[(column.name, name)] += n
        if match is None:
            continue
        fp_hits = 0
        for value, n in Counter(values).items():
            # a value in the reserved domain cannot be a production identifier (the rest of its row still is
            # matched: only this value is passed over)
            if value and SYNTHETIC_DOMAIN not in value and match(value):
                fp_hits += n
        if fp_hits:
            counts[(column.name, FINGERPRINT)] += fp_hits
    findings = [Finding(source, col, det, n) for (col, det), n in sorted(counts.items())]
    return SourceScan(source, len(rows), sum(marked), findings)


_CELL_SPLIT = re.compile(r"[,;\t|]")


def scan_text(source: str, text: str, fingerprints: Fingerprints | None = None, max_lines: int = 100_000) -> SourceScan:
    """A data file: each line a row of one column named 'line'; the production fingerprints are matched
    against each cell of delimited lines (CSV, TSV), the way a database export holds them. No line of a file
    is exempt: the tool writes no files, so none is known to be its own."""
    lines = text.splitlines()[:max_lines]
    result = scan_rows(source, [Column("line")], [(line,) for line in lines])
    if fingerprints is not None and len(fingerprints) > 0:
        cells = (cell.strip().strip('"') for line in lines for cell in _CELL_SPLIT.split(line))
        hits = sum(1 for cell in cells if SYNTHETIC_DOMAIN not in cell and fingerprints.matches(cell))
        if hits:
            result.findings.append(Finding(source, "line", FINGERPRINT, hits))
    return result
