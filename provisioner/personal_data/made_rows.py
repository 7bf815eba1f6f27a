"""Rows this tool wrote itself (a seed, an anonymised refresh), recognised by provenance, never by content.

What a row holds proves nothing about where it came from: anyone can type `example.invalid` next to a real
name. So right after `provision data seed` (or `refresh`) has loaded a database, the controller reads every table
back, exactly as the scan reads it, and keeps a keyed fingerprint of each row's whole content (HMAC-SHA256 with
the controller's data key, which never leaves the controller for this): `<evidence>/data/<record id>.rows`, one
`<table> TAB <fingerprint>` per line, its SHA-256 written in the seed or refresh record.

The scan exempts from its pattern detectors exactly the rows whose fingerprint is in the file of the last seed or
refresh of that database (a scrub, which empties it, ends that). A row edited after the seed, or added by hand,
no longer matches, and is scanned like any other. Production fingerprints are matched in every row regardless.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.workspace.files import write_atomic

SUFFIX = ".rows"
PURPOSE = b"provisioner made rows v1"
DIGEST = 16  # bytes of HMAC-SHA256 kept per row
Row = Sequence[str | None]


@dataclass
class MadeRows:
    """The fingerprints of rows the tool wrote, per table; `made(table, row)` says whether a row is one of them.

    A row's fingerprint is the keyed hash of the table's name and the row's `repr` (values as text or None, in
    column order): unambiguous, and computed in C, so the scan of a million seeded rows stays fast."""

    key: bytes
    digests: dict[str, set[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._base = hmac.new(hmac.digest(self.key, PURPOSE, "sha256"), digestmod="sha256")

    def _table_base(self, table: str) -> Any:
        base = self._base.copy()
        base.update(table.encode() + b"\n")
        return base

    def of(self, table: str, row: Row) -> bytes:
        mac = self._table_base(table)
        mac.update(repr(tuple(row)).encode())
        return mac.digest()[:DIGEST]

    def add(self, table: str, rows: Iterable[Row]) -> None:
        self.digests.setdefault(table, set()).update(self.of(table, row) for row in rows)

    def made(self, table: str, row: Row) -> bool:
        return self.for_table(table)(row)

    def for_table(self, table: str) -> Callable[[Row], bool]:
        """A one-argument test for scan_rows: was this row of `table` made by the tool?"""
        known = self.digests.get(table)
        if not known:
            return lambda row: False
        base = self._table_base(table)

        def made(row: Row) -> bool:
            mac = base.copy()
            mac.update(repr(tuple(row)).encode())
            return mac.digest()[:DIGEST] in known

        return made

    def text(self) -> str:
        return "".join(f"{table}\t{d.hex()}\n" for table in sorted(self.digests) for d in sorted(self.digests[table]))

    def counts(self) -> dict[str, int]:
        return {table: len(d) for table, d in sorted(self.digests.items())}


def rows_file(data_dir: Path, record_id: str) -> Path:
    return data_dir / f"{record_id}{SUFFIX}"


def write(data_dir: Path, record_id: str, made: MadeRows) -> dict[str, Any]:
    """Write the fingerprints beside the record; returns what the record keeps of them (file, digest, counts)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    text = made.text()
    path = write_atomic(rows_file(data_dir, record_id), text)
    return {"file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "rows": made.counts()}


def load(data_dir: Path, record: dict[str, Any], key: bytes) -> MadeRows | None:
    """The fingerprints a seed or refresh record names; None when it names none, or the file is missing or not
    the one the record was written with (then no row is exempt)."""
    kept = record.get("made_rows")
    if not isinstance(kept, dict) or not isinstance(kept.get("file"), str):
        return None
    path = data_dir / Path(kept["file"]).name
    try:
        text = path.read_text()
    except OSError:
        return None
    if hashlib.sha256(text.encode()).hexdigest() != kept.get("sha256"):
        return None
    made = MadeRows(key)
    for line in text.splitlines():
        table, _, digest = line.partition("\t")
        try:
            made.digests.setdefault(table, set()).add(bytes.fromhex(digest))
        except ValueError:
            return None
    return made
