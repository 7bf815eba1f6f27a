"""Synthetic data for development: Faker with a fixed seed, so the same seed gives the same rows.

Every customer's e-mail is in the reserved domain example.invalid and every phone number in Ofcom's drama
range, so those values are no one's. That exempts no row from the scan: the scan knows seeded rows only by the
fingerprints the seed records of them after loading (personal_data.made_rows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from faker import Faker

from provisioner.personal_data.detectors import SYNTHETIC_DOMAIN


@dataclass(frozen=True)
class TableData:
    name: str
    columns: list[tuple[str, str]]  # (name, SQL type)
    rows: Sequence[tuple[object, ...]]

    def digest(self) -> str:
        """A digest of the generated content: the same seed gives the same digest (reproducibility)."""
        h = hashlib.sha256()
        for row in self.rows:
            h.update(repr(row).encode())
        return h.hexdigest()


CUSTOMER_COLUMNS = [
    ("id", "integer primary key"),
    ("full_name", "text not null"),
    ("email", "text not null"),
    ("phone", "text"),
    ("street", "text"),
    ("city", "text"),
    ("postcode", "text"),
    ("date_of_birth", "date"),
    ("iban", "text"),
    ("created_at", "timestamptz not null"),
]
ORDER_COLUMNS = [
    ("id", "integer primary key"),
    ("customer_id", "integer not null"),
    ("product", "text not null"),
    ("amount", "numeric(10,2) not null"),
    ("status", "text not null"),
    ("placed_at", "timestamptz not null"),
]
PRODUCTS = ("Oak desk", "Walnut shelf", "Lamp, brass", "Chair, grey", "Rug 120x180", "Mirror, round")
STATUSES = ("placed", "paid", "shipped", "delivered", "returned")
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def synthetic_email(faker: Faker, index: int) -> str:
    return f"{faker.user_name()}.{index}@{SYNTHETIC_DOMAIN}"


def fictional_phone(faker: Faker) -> str:
    return f"+44 7700 900{faker.random_int(0, 999):03d}"


def generate(seed: int, customers: int) -> list[TableData]:
    faker = Faker("en_GB")
    faker.seed_instance(seed)
    customer_rows = []
    for index in range(1, customers + 1):
        customer_rows.append(
            (
                index,
                faker.name(),
                synthetic_email(faker, index),
                fictional_phone(faker),
                faker.street_address().replace("\n", ", "),
                faker.city(),
                faker.postcode(),
                faker.date_of_birth(minimum_age=18, maximum_age=90),
                faker.iban(),
                EPOCH + dt.timedelta(minutes=faker.random_int(0, 500_000)),
            )
        )
    order_rows = []
    for index in range(1, customers * 3 + 1):
        order_rows.append(
            (
                index,
                faker.random_int(1, max(customers, 1)),
                faker.random_element(PRODUCTS),
                f"{faker.random_int(500, 150_000) / 100:.2f}",
                faker.random_element(STATUSES),
                EPOCH + dt.timedelta(minutes=faker.random_int(0, 500_000)),
            )
        )
    return [TableData("customers", CUSTOMER_COLUMNS, customer_rows), TableData("orders", ORDER_COLUMNS, order_rows)]
