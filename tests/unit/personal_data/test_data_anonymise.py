"""The anonymiser's plan (every personal-looking column needs a rule) and its rules; seeding is reproducible."""

from __future__ import annotations

from provisioner.personal_data.anonymise import Anonymiser, looks_personal_by_name, plan, target_type
from provisioner.personal_data.detectors import classify
from provisioner.personal_data.scan import Column
from provisioner.personal_data.seed import generate

SCHEMA = [("customers", [Column("id", "integer"), Column("full_name"), Column("email"), Column("notes")])]
SAMPLE = {"customers": [("1", "Margaret Thornton", "margaret.thornton@btinternet.com", "ring mt on +44 7911 123456")]}


def test_columns_look_personal_by_name():
    assert all(looks_personal_by_name(c) for c in ("email", "full_name", "phone", "date_of_birth", "iban", "postcode"))
    assert not any(looks_personal_by_name(c) for c in ("id", "amount", "status", "product", "placed_at"))


def test_every_personal_column_without_a_rule_is_unmasked_including_one_found_by_content():
    result = plan(SCHEMA, SAMPLE, {})
    unmasked = {v.column: v.reasons for v in result.unmasked}
    assert set(unmasked) == {"full_name", "email", "notes"}
    assert unmasked["notes"] == ["phone"], "a free-text column is caught by what it holds, not its name"
    assert "column name" in unmasked["email"] and "email" in unmasked["email"]


def test_a_rule_for_each_personal_column_clears_the_plan():
    rules = {"customers": {"full_name": "fake:name", "email": "hash", "notes": "null"}}
    result = plan(SCHEMA, SAMPLE, rules)
    assert result.unmasked == []
    assert result.rule_of("customers", "notes") == "null" and result.rule_of("customers", "id") == "keep"


def test_keep_is_refused_for_a_column_whose_values_are_personal():
    rules = {"customers": {"full_name": "keep", "email": "hash", "notes": "null"}}
    (verdict,) = plan(SCHEMA, SAMPLE, rules).unmasked
    assert verdict.column == "full_name" and verdict.why() == "rule keep, but its values hold person_name"
    cities = {"customers": [("1", "Leeds", "x@gmail.com", "")]}
    assert plan(SCHEMA, cities, rules).unmasked == [], "keep stands where the values are not personal"


def test_a_new_column_in_production_cannot_leak_unmasked():
    schema = [("customers", [*SCHEMA[0][1], Column("mobile")])]
    rules = {"customers": {"full_name": "fake:name", "email": "hash", "notes": "null"}}
    sample = {"customers": [(*SAMPLE["customers"][0], None)]}
    assert [v.column for v in plan(schema, sample, rules).unmasked] == ["mobile"]


def test_rules_transform_values_deterministically_and_never_return_the_value():
    anonymiser = Anonymiser(b"key-one")
    real = "margaret.thornton@btinternet.com"
    hashed = anonymiser.apply("hash", real)
    assert hashed == anonymiser.apply("hash", real) != real and len(hashed) == 16
    assert Anonymiser(b"key-two").apply("hash", real) != hashed, "the hash is keyed"
    fake_email = anonymiser.apply("fake:email", real)
    assert fake_email.endswith("@example.invalid") and fake_email == anonymiser.apply("fake:email", real)
    fake_name = anonymiser.apply("fake:name", "Margaret Thornton")
    assert fake_name != "Margaret Thornton" and fake_name == anonymiser.apply("fake:name", "Margaret Thornton")
    assert classify(anonymiser.apply("fake:phone", "+44 7911 123456")) == [], "fictional range"
    assert anonymiser.apply("null", real) is None
    assert anonymiser.apply("replace:redacted", real) == "redacted"
    assert anonymiser.apply("keep", real) == real
    assert anonymiser.apply("hash", None) is None


def test_target_types_follow_the_rule():
    assert target_type("keep", "integer") == "integer"
    assert target_type("hash", "integer") == "text"
    assert target_type("fake:date", "date") == "date"
    assert target_type("null", "numeric(10,2)") == "numeric(10,2)"


def test_seeding_is_reproducible_and_marked():
    first, again, other = generate(7, 30), generate(7, 30), generate(8, 30)
    assert [t.digest() for t in first] == [t.digest() for t in again]
    assert [t.digest() for t in first] != [t.digest() for t in other]
    customers = first[0]
    email = [c for c, _ in customers.columns].index("email")
    assert all(str(row[email]).endswith("@example.invalid") for row in customers.rows)
    assert len(first[1].rows) == 90
