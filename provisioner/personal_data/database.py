"""An environment's application database, reached as the automation account over SSH (psql as postgres).

SQL travels on stdin, never on a command line; data comes back in PostgreSQL's text COPY format. Errors
are reported by SQLSTATE only (psql VERBOSITY sqlstate), because PostgreSQL's messages may quote values.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from provisioner.errors import ProvisionError
from provisioner.personal_data.scan import Column
from provisioner.site.model import Host
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState

PROVENANCE_TABLE = "provisioner_provenance"
APP_DATABASE = "app"
APP_OWNER = "app"

_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}


def decode_copy_value(field: str) -> str | None:
    """One field of COPY's text format: \\N is NULL, backslash escapes for specials."""
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        char = field[i]
        if char == "\\" and i + 1 < len(field):
            out.append(_UNESCAPE.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def encode_copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def parse_copy(text: str) -> list[tuple[str | None, ...]]:
    return [tuple(decode_copy_value(f) for f in line.split("\t")) for line in text.splitlines()]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: list[Column]


class Database:
    def __init__(self, state: SiteState, host: Host, database: str = APP_DATABASE):
        self.state = state
        self.host = host
        self.database = database

    def _ssh(self, remote: str, stdin: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-i", str(self.state.controller_identity()), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.state.known_hosts}",
             "-o", "ConnectTimeout=10", f"{AUTOMATION_USER}@{self.host.address}", remote],
            input=stdin, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def psql(self, script: str, variables: dict[str, str] | None = None, timeout: float = 600) -> str:
        """Run a psql script as postgres in the app database; returns stdout (tuples only, unaligned)."""
        header = "\\set ON_ERROR_STOP 1\n\\set VERBOSITY sqlstate\n"
        for name, value in (variables or {}).items():
            header += f"\\set {name} {value}\n"
        remote = f"sudo -n -u postgres psql -X -q -A -t -d {shlex.quote(self.database)} -f -"
        try:
            proc = self._ssh(remote, header + script, timeout)
        except subprocess.TimeoutExpired as exc:
            raise ProvisionError(f"the database on {self.host.name} did not answer within {timeout:.0f}s") from exc
        if proc.returncode != 0:
            codes = [line.split()[-1] for line in proc.stderr.splitlines() if line.startswith(("ERROR", "psql:"))]
            hint = codes[-1] if codes else f"ssh exit {proc.returncode}"
            raise ProvisionError(f"the database on {self.host.name} refused the operation (SQLSTATE/error: {hint})")
        return proc.stdout

    @property
    def read_as(self) -> str:
        return f"as postgres through SSH on {self.host.name} (its root decides what the reading prints)"

    def tables(self) -> list[TableInfo]:
        rows = self.psql(TABLES_SQL + ";\n")
        return tables_of([tuple(line.split("|", 2)) for line in rows.splitlines()])

    def count(self, table: str) -> int:
        return int(self.psql(count_sql(table) + ";\n").strip() or 0)

    def read(self, table: TableInfo, budget: int | None = None) -> tuple[list[tuple[str | None, ...]], int]:
        """Rows of a table (all, or a random sample of about `budget`); returns (rows, rows in the table)."""
        total = self.count(table.name)
        text = self.psql(f"COPY ({sample_sql(table, total, budget)}) TO STDOUT;\n")
        return parse_copy(text), total

    def provenance(self) -> dict[str, str] | None:
        exists = self.psql(PROVENANCE_EXISTS_SQL + ";\n").strip()
        if exists != "t":
            return None
        line = self.psql(PROVENANCE_SQL + ";\n").strip()
        if not line:
            return None
        record, kind, recorded_at = line.split("|", 2)
        return {"record": record, "kind": kind, "recorded_at": recorded_at}


# ---- what a reading asks, whoever carries it -------------------------------------------------------------------
TABLES_SQL = (
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
    f"AND c.relname <> '{PROVENANCE_TABLE}' ORDER BY c.relname, a.attnum"
)
PROVENANCE_EXISTS_SQL = f"SELECT to_regclass('public.{PROVENANCE_TABLE}') IS NOT NULL"
PROVENANCE_SQL = f"SELECT record, kind, recorded_at FROM public.{PROVENANCE_TABLE} ORDER BY recorded_at DESC LIMIT 1"


def tables_of(rows: Iterable[Sequence[str | None]]) -> list[TableInfo]:
    """TABLES_SQL's rows (table, column, type) as tables with their columns, in order."""
    tables: dict[str, list[Column]] = {}
    for table, column, kind in rows:
        tables.setdefault(str(table), []).append(Column(str(column), str(kind)))
    return [TableInfo(name, columns) for name, columns in tables.items()]


def count_sql(table: str) -> str:
    return f"SELECT count(*) FROM public.{quote_ident(table)}"


def sample_sql(table: TableInfo, total: int, budget: int | None) -> str:
    """All rows, or a random sample of about `budget` when the table holds more."""
    columns = ", ".join(quote_ident(c.name) for c in table.columns)
    source = f"public.{quote_ident(table.name)}"
    if budget is not None and total > budget:
        percent = min(100.0, budget * 120.0 / total)
        source += f" TABLESAMPLE BERNOULLI ({percent:.6f})"
    limit = f" LIMIT {budget}" if budget is not None else ""
    return f"SELECT {columns} FROM {source}{limit}"


class DatabaseReader(Protocol):
    """What DATA-1 and DATA-2 read from a database outside production, and how it was read."""

    @property
    def read_as(self) -> str: ...

    def tables(self) -> list[TableInfo]: ...

    def read(self, table: TableInfo, budget: int | None = None) -> tuple[list[tuple[str | None, ...]], int]: ...

    def provenance(self) -> dict[str, str] | None: ...


@dataclass(frozen=True)
class Answer:
    """One query's answer: its rows as text (None for NULL), or the server's SQLSTATE."""

    rows: tuple[tuple[str | None, ...], ...] = ()
    sqlstate: str = ""


class QueriedDatabase:
    """A database read by a client that is not on its host: `ask` sends read-only queries (each a single SELECT)
    and returns one answer per query, raising ProvisionError when it cannot ask at all."""

    def __init__(self, host: Host, ask: Callable[[list[str]], list[Answer]], read_as: str):
        self.host = host
        self._ask = ask
        self._read_as = read_as

    @property
    def read_as(self) -> str:
        return self._read_as

    def _rows(self, sql: str) -> list[tuple[str | None, ...]]:
        (answer,) = self._ask([sql])
        if answer.sqlstate:
            raise ProvisionError(
                f"the database on {self.host.name} refused the controller's reading (SQLSTATE {answer.sqlstate})"
            )
        return list(answer.rows)

    def tables(self) -> list[TableInfo]:
        return tables_of(self._rows(TABLES_SQL))

    def read(self, table: TableInfo, budget: int | None = None) -> tuple[list[tuple[str | None, ...]], int]:
        counted = self._rows(count_sql(table.name))
        total = int(counted[0][0] or 0) if counted else 0
        return self._rows(sample_sql(table, total, budget)), total

    def provenance(self) -> dict[str, str] | None:
        exists, latest = self._ask([PROVENANCE_EXISTS_SQL, PROVENANCE_SQL])
        if exists.sqlstate or not exists.rows or exists.rows[0][0] != "t":
            if exists.sqlstate:
                raise ProvisionError(
                    f"the database on {self.host.name} refused the controller's reading (SQLSTATE {exists.sqlstate})"
                )
            return None
        if latest.sqlstate:
            raise ProvisionError(
                f"the database on {self.host.name} refused the controller's reading (SQLSTATE {latest.sqlstate})"
            )
        if not latest.rows:
            return None
        record, kind, recorded_at = (str(v) for v in latest.rows[0])
        return {"record": record, "kind": kind, "recorded_at": recorded_at}


def replace_tables_script(
    tables: Sequence[tuple[str, Sequence[tuple[str, str]], Iterable[Sequence[object]]]],
    provenance: tuple[str, str] | None,
    drop_others: bool = True,
) -> str:
    """One transaction: drop every table of the app schema, create and fill the given ones as the app owner,
    and stamp the provenance (record id, kind). Nothing changes unless everything succeeds."""
    lines = ["BEGIN;"]
    if drop_others:
        lines.append(
            "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "LOOP EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', t.tablename); END LOOP; END $$;"
        )
    lines.append(f"SET LOCAL ROLE {quote_ident(APP_OWNER)};")
    for name, columns, rows in tables:
        definition = ", ".join(f"{quote_ident(c)} {kind}" for c, kind in columns)
        lines.append(f"CREATE TABLE {quote_ident(name)} ({definition});")
        lines.append(f"COPY {quote_ident(name)} ({', '.join(quote_ident(c) for c, _ in columns)}) FROM STDIN;")
        lines.extend("\t".join(encode_copy_value(v) for v in row) for row in rows)
        lines.append("\\.")
    if provenance is not None:
        record, kind = provenance
        lines.append(
            f"CREATE TABLE {PROVENANCE_TABLE} (record text NOT NULL, kind text NOT NULL, "
            "recorded_at timestamptz NOT NULL DEFAULT now());"
        )
        lines.append(f"INSERT INTO {PROVENANCE_TABLE} (record, kind) VALUES ('{record}', '{kind}');")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"
