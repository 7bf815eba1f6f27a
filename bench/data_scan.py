"""Throughput of the personal-data scan engine (provisioner.personal_data.scan.scan_rows) on a one-million-row table.

The engine is a pure function over rows, so no database is needed: the table is built in memory the way
`provision data scan` receives it (every value as text). Two shapes are measured:

  seeded     1,000,000 customer rows as `provision data seed` makes them, each recognised by the fingerprint
             the seed recorded of it (personal_data.made_rows), with 1% real-looking rows mixed in, matched
             against 10,000 production fingerprints;
  worst      100,000 rows none of which is synthetic: every prefilter passes, every validator runs.

    .venv/bin/python bench/data_scan.py [--rows N]

Target: >= 50,000 rows/s on the 2-core CI machine for the seeded table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faker import Faker

from provisioner.personal_data.fingerprints import Fingerprints
from provisioner.personal_data.made_rows import MadeRows
from provisioner.personal_data.scan import Column, scan_rows

COLUMNS = [
    Column("id", "integer"),
    Column("full_name", "text"),
    Column("email", "text"),
    Column("phone", "text"),
    Column("city", "text"),
    Column("postcode", "text"),
    Column("amount", "numeric(10,2)"),
    Column("status", "text"),
    Column("created_at", "timestamp with time zone"),
    Column("note", "text"),
]


def build(rows: int, real_every: int | None) -> list[tuple[str, ...]]:
    faker = Faker("en_GB")
    faker.seed_instance(50000)
    names = [faker.name() for _ in range(2000)]
    users = [faker.user_name() for _ in range(2000)]
    cities = [faker.city() for _ in range(300)]
    postcodes = [faker.postcode() for _ in range(2000)]
    notes = ["", "call before delivery", "gift wrap", "leave with neighbour", "fragile"]
    table = []
    for i in range(rows):
        real = real_every is not None and i % real_every == 0
        user = users[i % len(users)]
        table.append(
            (
                str(i),
                names[(i * 7) % len(names)],
                f"{user}.{i}@{'gmail.com' if real else 'example.invalid'}",
                f"+44 7911 {i % 1000000:06d}" if real else f"+44 7700 900{i % 1000:03d}",
                cities[i % len(cities)],
                postcodes[(i * 3) % len(postcodes)],
                f"{(i % 150000) / 100:.2f}",
                ("placed", "paid", "shipped", "delivered")[i % 4],
                f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d}:00+00",
                notes[i % len(notes)],
            )
        )
    return table


def seeded_record(rows: list[tuple[str, ...]]) -> MadeRows:
    """What the seed records: the fingerprints of the rows it wrote (the real-looking ones are no seed's)."""
    made = MadeRows(b"bench-data-key")
    made.add("customers", (row for row in rows if "@example.invalid" in row[2]))
    return made


def measure(label: str, rows: list[tuple[str, ...]], fingerprints: Fingerprints, made: MadeRows) -> float:
    start, cpu_start = time.perf_counter(), time.process_time()
    result = scan_rows("customers", COLUMNS, rows, fingerprints, made.for_table("customers"))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rate = len(rows) / seconds
    found = ", ".join(f"{f.column}/{f.detector}={f.count}" for f in result.findings) or "none"
    print(f"{label:<7} {len(rows):>9,} rows in {seconds:6.2f} s = {rate:>9,.0f} rows/s "
          f"(CPU {cpu:.2f} s = {len(rows) / cpu:,.0f} rows/CPU-s); synthetic rows {result.synthetic_rows:,}; "
          f"findings: {found}")  # fmt: skip
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    fingerprints = Fingerprints(b"bench-key-" * 4)
    prod = Faker("en_GB")
    prod.seed_instance(1)
    for _ in range(10_000):
        digest = fingerprints.of(prod.free_email())
        if digest:
            fingerprints.digests.add(digest)
    table = build(args.rows, real_every=100)
    seeded = measure("seeded", table, fingerprints, seeded_record(table))
    worst = build(max(args.rows // 10, 1), real_every=1)
    measure("worst", worst, fingerprints, seeded_record(worst))
    verdict = "meets" if seeded >= 50_000 else "MISSES"
    print(f"seeded-table throughput {seeded:,.0f} rows/s {verdict} the 50,000 rows/s target")


if __name__ == "__main__":
    main()
