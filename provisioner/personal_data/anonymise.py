"""The anonymiser between production and test: a rule for every column that looks personal, or no copy.

Rules (site file `test_data.rules.<table>.<column>`):
  hash          keyed HMAC of the value (16 hex digits): joins on it still work, the value is gone
  null          NULL
  keep          copied as is: the site's explicit word that the column is not personal (refused when the
                detectors find personal data in the column's values)
  replace:TEXT  the constant TEXT
  fake:KIND     a synthetic value of that kind, the same for the same input (name, email, phone, ...)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from faker import Faker

from provisioner.personal_data.detectors import SYNTHETIC_DOMAIN
from provisioner.personal_data.scan import Column, scan_rows
from provisioner.personal_data.seed import fictional_phone

# column names that say "personal" whatever the values look like
PERSONAL_NAME = re.compile(
    r"(^|_)(name|first_?name|last_?name|surname|full_?name|forename|e?mail|phone|mobile|tel|telephone|fax|"
    r"address|addr|street|post_?code|zip|zip_?code|birth|dob|birthday|iban|bic|account|card|pan|"
    r"ssn|nino|national_?id|tax_?id|passport|licen[cs]e|ip|ip_?address|login|username|contact)($|_)"
)


def looks_personal_by_name(column: str) -> bool:
    return bool(PERSONAL_NAME.search(column.lower()))


@dataclass
class ColumnVerdict:
    table: str
    column: str
    reasons: list[str]  # 'column name' and/or detector names; never values
    rule: str | None

    @property
    def detected(self) -> list[str]:
        return [r for r in self.reasons if r != "column name"]

    @property
    def unmasked(self) -> bool:
        """No rule for a personal-looking column, or `keep` for one whose values the detectors find personal."""
        return (bool(self.reasons) and self.rule is None) or (self.rule == "keep" and bool(self.detected))

    def why(self) -> str:
        if self.rule == "keep":
            return f"rule keep, but its values hold {', '.join(self.detected)}"
        return ", ".join(self.reasons)


@dataclass
class AnonymisePlan:
    verdicts: list[ColumnVerdict] = field(default_factory=list)

    @property
    def unmasked(self) -> list[ColumnVerdict]:
        return [v for v in self.verdicts if v.unmasked]

    def rule_of(self, table: str, column: str) -> str:
        return next((v.rule for v in self.verdicts if v.table == table and v.column == column), None) or "keep"


def plan(
    schema: Sequence[tuple[str, Sequence[Column]]],
    samples: dict[str, Sequence[Sequence[str | None]]],
    rules: dict[str, dict[str, str]],
) -> AnonymisePlan:
    """Decide per column: which look personal (by name or by what the detectors find in a sample)."""
    result = AnonymisePlan()
    for table, columns in schema:
        scanned = scan_rows(table, columns, samples.get(table, []))
        detected: dict[str, list[str]] = {}
        for finding in scanned.findings:
            detected.setdefault(finding.column, []).append(finding.detector)
        for column in columns:
            reasons = (["column name"] if looks_personal_by_name(column.name) else []) + detected.get(column.name, [])
            result.verdicts.append(ColumnVerdict(table, column.name, reasons, rules.get(table, {}).get(column.name)))
    return result


class Anonymiser:
    """Applies rules deterministically: the same input and key give the same output, across tables."""

    def __init__(self, key: bytes):
        self.key = key
        self.faker = Faker("en_GB")

    def _digest(self, value: str) -> bytes:
        return hmac.digest(self.key, value.encode(), "sha256")

    def apply(self, rule: str, value: str | None, column_type: str = "text") -> object:
        kind, _, arg = rule.partition(":")
        if kind == "keep":
            return value
        if kind == "null" or value is None:
            return None
        if kind == "replace":
            return arg
        digest = self._digest(value)
        if kind == "hash":
            return digest.hex()[:16]
        return self._fake(arg, digest)

    def _fake(self, kind: str, digest: bytes) -> object:
        self.faker.seed_instance(int.from_bytes(digest[:8], "big"))
        f = self.faker
        if kind == "email":
            return f"user.{hashlib.sha256(digest).hexdigest()[:12]}@{SYNTHETIC_DOMAIN}"
        if kind == "phone":
            return fictional_phone(f)
        if kind == "date":
            return dt.date(1950, 1, 1) + dt.timedelta(days=int.from_bytes(digest[8:12], "big") % 20000)
        producers = {
            "name": f.name,
            "first_name": f.first_name,
            "last_name": f.last_name,
            "street": f.street_address,
            "city": f.city,
            "postcode": f.postcode,
            "iban": f.iban,
            "text": f.sentence,
        }
        return str(producers[kind]()).replace("\n", ", ")


def target_type(rule: str, source_type: str) -> str:
    """The column type in test: rules that write text make the column text (dates stay dates)."""
    if rule in ("keep", "null") or (rule == "fake:date" and source_type.startswith("date")):
        return source_type
    return "text"
