"""Generate the labelled sample set tests/data/pii_samples.csv (run once; the file is committed).

Positives are made with Faker in locales partly outside the name detector's own lists (so its recall is
not measured on its own dictionary) and with real-format numbers; negatives are the things a shop's
tables hold besides personal data (products, amounts, dates, references, hashes) plus near misses:
numbers failing their checksum, fictional phone ranges and reserved-domain e-mail addresses.

    .venv/bin/python bench/make_pii_samples.py
"""

from __future__ import annotations

import csv
import random
import uuid
from pathlib import Path

from faker import Faker
from stdnum import luhn

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii_samples.csv"
PER_LABEL = 150


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
        first, second = "A", "B"
    digits = "".join(rng.choice("0123456789") for _ in range(6))
    spaced = rng.random() < 0.5
    body = f"{digits[:2]} {digits[2:4]} {digits[4:]}" if spaced else digits
    return f"{first}{second}{' ' if spaced else ''}{body}{' ' if spaced else ''}{rng.choice('ABCD')}"


def _phone(rng: random.Random, us: Faker) -> str:
    def pair() -> int:
        return rng.randint(10, 99)

    return rng.choice(
        [
            f"+44 7{rng.randint(400, 999)} {rng.randint(100000, 999999)}",
            f"020 {rng.randint(3000, 8999)} {rng.randint(1000, 9999)}",
            f"0{rng.choice(['161', '113', '131'])} {rng.randint(200, 899)} {rng.randint(1000, 9999)}",
            us.numerify(f"+1 ({rng.choice(['212', '415', '617', '312'])}) {rng.randint(201, 989)}-####"),
            f"+49 30 {rng.randint(1000000, 9999999)}",
            f"+33 6 {pair()} {pair()} {pair()} {pair()}",
        ]
    )


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _broken_luhn(rng: random.Random) -> str:
    while True:
        digits = "4" + "".join(rng.choice("0123456789") for _ in range(15))
        if not luhn.is_valid(digits):
            return digits


def _broken_iban(faker: Faker) -> str:
    iban = faker.iban()
    check = int(iban[2:4])
    return f"{iban[:2]}{(check + 1) % 100:02d}{iban[4:]}"


def samples() -> list[tuple[str, str]]:
    rng = random.Random(27001)
    f = Faker(["en_GB", "en_US", "en_IE", "en_AU", "de_DE", "fr_FR", "nl_NL", "es_ES"])
    Faker.seed(27001)
    gb, us = Faker("en_GB"), Faker("en_US")
    gb.seed_instance(1), us.seed_instance(2)
    rows: list[tuple[str, str]] = []
    for _ in range(PER_LABEL):
        emails = [f.free_email(), f.company_email(), f"{f.user_name()}@{f.free_email_domain()}"]
        rows.append((rng.choice(emails), "email"))
        rows.append((_phone(rng, us), "phone"))
        rows.append((f.iban(), "iban"))
        rows.append((f.credit_card_number(), "card"))
        rows.append((_ssn(rng), "us_ssn"))
        rows.append((_nino(rng), "uk_nino"))
        address = [gb.street_address(), us.street_address(), gb.postcode()]
        address.append(f"{gb.street_address()}, {gb.city()} {gb.postcode()}")
        rows.append((rng.choice(address), "address"))
        rows.append((f.name(), "person_name"))
    furniture = ["Oak", "Walnut", "Brass", "Grey", "Linen", "Blue"]
    items = ["desk", "shelf", "lamp", "chair", "rug"]
    negatives = [
        lambda: f"{rng.choice(furniture)} {rng.choice(items)}",
        lambda: f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
        lambda: str(rng.randint(1, 999999)),
        lambda: f.date_time().isoformat(sep=" "),
        lambda: f.date(),
        lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        lambda: f"ORD-{rng.randint(100000, 999999)}",
        lambda: f"SKU {rng.randint(1000, 9999)}-{rng.choice('ABCDEFGH')}",
        lambda: rng.getrandbits(128).to_bytes(16, "big").hex(),
        lambda: f.sentence(nb_words=6),
        lambda: rng.choice(["placed", "paid", "shipped", "delivered", "returned", "cancelled"]),
        lambda: f.city(),
        lambda: _broken_luhn(rng),
        lambda: _broken_iban(f),
        lambda: f"user.{rng.randint(1, 99999)}@example.invalid",
        lambda: f"+44 7700 900{rng.randint(0, 999):03d}",
        lambda: f"020 7946 0{rng.randint(0, 999):03d}",
        lambda: f"000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        lambda: f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 50)}",
        lambda: f"{rng.randint(1, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        lambda: f"Invoice {rng.randint(1000, 99999)} for {rng.choice(['desk', 'lamp', 'rug'])} order",
        lambda: f.company(),
    ]
    for index in range(PER_LABEL * 8):
        rows.append((negatives[index % len(negatives)](), "none"))
    rng.shuffle(rows)
    return rows


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["value", "label"])
        writer.writerows(samples())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
