"""The database reading DATA-1 and DATA-2 do from the controller's probe: the same questions the SSH reading asks
(tables, counts, a sample within the budget, the provenance stamp), answered by whoever carries them, and a refusal
is an error, never an empty (clean) database."""

from __future__ import annotations

import ipaddress

import pytest

from provisioner.errors import ProvisionError
from provisioner.personal_data import database
from provisioner.personal_data.database import Answer, QueriedDatabase
from provisioner.site.model import Host


def _host() -> Host:
    return Host(name="dev-db1", environment="dev", address=ipaddress.IPv4Address("10.90.10.21"), roles=("db",))


class Server:
    """Answers by the question asked, and records the questions."""

    def __init__(self, answers: dict[str, Answer]):
        self.answers = answers
        self.asked: list[list[str]] = []

    def __call__(self, queries: list[str]) -> list[Answer]:
        self.asked.append(queries)
        return [self.answers[q] for q in queries]


def test_tables_come_back_with_their_columns_in_order():
    server = Server(
        {database.TABLES_SQL: Answer(rows=(("a", "id", "integer"), ("a", "email", "text"), ("b", "x", "date")))}
    )
    db = QueriedDatabase(_host(), server, "from the probe")
    tables = db.tables()
    assert [(t.name, [(c.name, c.type) for c in t.columns]) for t in tables] == [
        ("a", [("id", "integer"), ("email", "text")]),
        ("b", [("x", "date")]),
    ]
    assert db.read_as == "from the probe"


def test_a_big_table_is_sampled_within_the_budget_and_a_small_one_read_whole():
    table = database.TableInfo("customers", [database.Column("email", "text")])
    big = database.sample_sql(table, 10_000, 200)
    assert big == 'SELECT "email" FROM public."customers" TABLESAMPLE BERNOULLI (2.400000) LIMIT 200'
    assert database.sample_sql(table, 50, 200) == 'SELECT "email" FROM public."customers" LIMIT 200'
    server = Server({
        database.count_sql("customers"): Answer(rows=(("50",),)),
        database.sample_sql(table, 50, 200): Answer(rows=(("a@example.com",), (None,))),
    })  # fmt: skip
    rows, total = QueriedDatabase(_host(), server, "").read(table, 200)
    assert (rows, total) == ([("a@example.com",), (None,)], 50)


def test_a_table_name_cannot_break_out_of_its_quotes():
    assert database.count_sql('x"; DROP TABLE y; --') == 'SELECT count(*) FROM public."x""; DROP TABLE y; --"'


def test_the_provenance_stamp_or_none():
    stamp = Answer(rows=(("SEED-1", "seed", "2026-12-05 06:00:00+00"),))
    present = Server({database.PROVENANCE_EXISTS_SQL: Answer(rows=(("t",),)), database.PROVENANCE_SQL: stamp})
    assert QueriedDatabase(_host(), present, "").provenance() == {
        "record": "SEED-1", "kind": "seed", "recorded_at": "2026-12-05 06:00:00+00",
    }  # fmt: skip
    missing = Server({
        database.PROVENANCE_EXISTS_SQL: Answer(rows=(("f",),)),
        database.PROVENANCE_SQL: Answer(sqlstate="42P01"),
    })  # fmt: skip
    assert QueriedDatabase(_host(), missing, "").provenance() is None


@pytest.mark.parametrize("question", ["tables", "provenance"])
def test_a_refused_reading_is_an_error_not_an_empty_database(question):
    refused = Answer(sqlstate="42501")  # insufficient privilege: the reader's grant was taken away
    server = Server({database.TABLES_SQL: refused, database.PROVENANCE_EXISTS_SQL: refused,
                     database.PROVENANCE_SQL: refused})  # fmt: skip
    with pytest.raises(ProvisionError, match="dev-db1 refused the controller's reading \\(SQLSTATE 42501\\)"):
        getattr(QueriedDatabase(_host(), server, ""), question)()
