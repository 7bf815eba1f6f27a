"""Detectors of personal data in single values: a cheap prefilter first, then a maintained validator.

Each detector answers "is this value (or a part of it) personal data of my kind?". Validators come from
maintained libraries where one exists: email-validator (e-mail syntax and domain), phonenumbers (numbering
plans), python-stdnum (IBAN, Luhn, US SSN). UK National Insurance numbers, postal addresses and person
names have no such library; they use the published format rules (HMRC's NINO prefixes, Royal Mail's
postcode format) and the name and street lists Faker ships.

Synthetic values never count: addresses in reserved domains (RFC 2606/6761: .invalid, .test, .example,
example.com/.net/.org) and numbers in ranges reserved for drama and testing (Ofcom 07700 900xxx and friends,
North America 555-01xx) are recognised as fictional.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import email_validator
import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

# The marker of synthetic data: every seeded or faked e-mail address lives in this reserved domain.
SYNTHETIC_DOMAIN = "example.invalid"
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = (".invalid", ".test", ".example", ".localhost")


@dataclass(frozen=True)
class Detector:
    name: str
    kind: str  # what it finds, for people
    find: Callable[[str], bool]


# ---- e-mail ------------------------------------------------------------------------------------------
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_LOCAL_OK = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def is_reserved_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return (
        domain.endswith(RESERVED_TLDS)
        or domain in RESERVED_DOMAINS
        or domain.endswith(tuple("." + d for d in RESERVED_DOMAINS))
    )


@functools.lru_cache(maxsize=65536)
def _domain_valid(domain: str) -> bool:
    """email-validator's verdict on the domain (syntax, IDNA, a real top-level domain); cached per domain."""
    try:
        email_validator.validate_email(f"x@{domain}", check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


def find_email(value: str) -> bool:
    if "@" not in value:
        return False
    for match in _EMAIL.finditer(value):
        local = match.group(0).rsplit("@", 1)[0].lstrip(".")
        domain = match.group(1)
        if is_reserved_domain(domain) or not _LOCAL_OK.match(local):
            continue
        if _domain_valid(domain.lower()):
            return True
    return False


# ---- phone numbers -----------------------------------------------------------------------------------
_PHONE = re.compile(r"(?<![\w/.-])(?:\+|00)?\(?\d[\d ().-]{5,17}\d(?![\w/.-])")
_PHONE_CHARS = re.compile(r"[^\d+]")
PHONE_REGIONS = ("GB", "US", "DE", "FR", "IE")
# fictional ranges (Ofcom drama numbers; North American 555-0100..0199), E.164 digits without '+'
_FICTIONAL_PHONE = (
    re.compile(r"^447700900\d{3}$"),
    re.compile(r"^441632960\d{3}$"),
    re.compile(r"^44113496\d{4}$"),
    re.compile(r"^44114496\d{4}$"),
    re.compile(r"^44115496\d{4}$"),
    re.compile(r"^44116496\d{4}$"),
    re.compile(r"^44117496\d{4}$"),
    re.compile(r"^44118496\d{4}$"),
    re.compile(r"^44121496\d{4}$"),
    re.compile(r"^44131496\d{4}$"),
    re.compile(r"^44141496\d{4}$"),
    re.compile(r"^44151496\d{4}$"),
    re.compile(r"^44161496\d{4}$"),
    re.compile(r"^44191498\d{4}$"),
    re.compile(r"^44207946\d{4}$"),
    re.compile(r"^44289018\d{4}$"),
    re.compile(r"^44292018\d{4}$"),
    re.compile(r"^443069990\d{3}$"),
    re.compile(r"^44808157\d{4}$"),
    re.compile(r"^44909879\d{4}$"),
    re.compile(r"^1\d{3}5550[01]\d{2}$"),
)


def is_fictional_phone(e164_digits: str) -> bool:
    return any(p.match(e164_digits) for p in _FICTIONAL_PHONE)


_NOT_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{3}-\d{2}-\d{4}$|^[\d.,]+$|^\d{1,2}[:.]\d{2}[:.]")


def _fictional_national(digits: str) -> bool:
    """A national UK (0...) or North American (10 digits) number in a fictional range."""
    if digits.startswith("0"):
        return is_fictional_phone("44" + digits[1:])
    return len(digits) == 10 and is_fictional_phone("1" + digits)


# Validity in a numbering plan is decided by a number's leading digits and its length; the last three digits
# never change it. The validator's verdicts are therefore kept per (region, number less its last three
# digits, length): a table of customers from one town meets phonenumbers once per exchange, not per row.
_PHONE_VERDICTS: dict[tuple[str, str, int], bool] = {}


def _valid_phone(text: str, digits: str, region: str | None) -> bool:
    key = (region or "+", digits[:-3], len(digits))
    verdict = _PHONE_VERDICTS.get(key)
    if verdict is None:
        try:
            verdict = phonenumbers.is_valid_number(phonenumbers.parse(text, region))
        except phonenumbers.NumberParseException:
            verdict = False
        if len(_PHONE_VERDICTS) < 500_000:
            _PHONE_VERDICTS[key] = verdict
    return verdict


def find_phone(value: str) -> bool:
    for match in _PHONE.finditer(value):
        text = match.group(0).strip()
        digits = _PHONE_CHARS.sub("", text)
        if not 7 <= len(digits.lstrip("+")) <= 15 or _NOT_PHONE.match(text):
            continue
        if text.startswith("00"):
            text, digits = "+" + text[2:], "+" + digits[2:]
        if text.startswith("+"):
            if not is_fictional_phone(digits[1:]) and _valid_phone(text, digits, None):
                return True
            continue
        if _fictional_national(digits):
            continue
        if any(_valid_phone(text, digits, region) for region in PHONE_REGIONS):
            return True
    return False


# ---- bank and card numbers -------------------------------------------------------------------------------
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")
# issuer prefixes: Visa, Mastercard (51-55, 2221-2720), Amex, Diners, Discover, JCB, Maestro, UnionPay
_CARD_ISSUERS = re.compile(r"^(?:4|5[0-8]|2[2-7]|2131|1800|3[47]|3[0689]|35|6\d)")
_CARD_SHORT = re.compile(r"^(?:50|5[6-8]|6)")  # only Maestro numbers have 12 digits


def find_iban(value: str) -> bool:
    return any(stdnum_iban.is_valid(m.group(0)) for m in _IBAN.finditer(value.upper()))


def find_card(value: str) -> bool:
    for match in _CARD.finditer(value):
        digits = match.group(0).replace(" ", "").replace("-", "")
        length_ok = 13 <= len(digits) <= 19 or (len(digits) == 12 and _CARD_SHORT.match(digits))
        if length_ok and _CARD_ISSUERS.match(digits) and luhn.is_valid(digits):
            return True
    return False


# ---- national identifiers ------------------------------------------------------------------------------
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
# HMRC: two prefix letters (D, F, I, Q, U, V never; O never second), six digits, suffix A-D
_NINO = re.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])\b")
_NINO_NEVER = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def find_ssn(value: str) -> bool:
    return any(stdnum_ssn.is_valid(m.group(0)) for m in _SSN.finditer(value))


def find_nino(value: str) -> bool:
    return any(m.group(1) not in _NINO_NEVER for m in _NINO.finditer(value.upper()))


# ---- postal addresses ---------------------------------------------------------------------------------
_UK_POSTCODE = re.compile(
    r"\b(?:GIR ?0AA|(?:[A-PR-UWYZ][0-9]{1,2}|[A-PR-UWYZ][A-HK-Y][0-9]{1,2}|[A-PR-UWYZ][0-9][A-HJKPSTUW]"
    r"|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]) ?[0-9][ABD-HJLNP-UW-Z]{2})\b"
)


@functools.cache
def _street_suffixes() -> re.Pattern[str]:
    from faker.providers.address import en_GB, en_US

    words = {s for s in en_US.Provider.street_suffixes + en_GB.Provider.street_suffixes if s.isalpha()}
    words |= {"Street", "St", "Road", "Rd", "Avenue", "Ave", "Lane", "Ln", "Drive", "Dr", "Close", "Way", "Place"}
    alternatives = "|".join(sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Z][a-z']+ ){{1,3}}(?:{alternatives})\b")


def find_address(value: str) -> bool:
    if not any(c.isdigit() for c in value):
        return False
    return bool(_UK_POSTCODE.search(value) or _street_suffixes().search(value))


# ---- person names ----------------------------------------------------------------------------------------
NAME_LOCALES = ("en_GB", "en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL")
_WORD = r"(?:O'|Mc|Mac|D')?[A-Z][a-zà-ÿ']+(?:-[A-Z][a-zà-ÿ']+)?"
_PARTICLES = r"(?:(?:van|von|de|der|den|del|della|di|da|du|le|la|ter|ten|mac|st\.?) )*"
_NAME = re.compile(rf"(?<![\w-])({_WORD})((?: {_WORD}| [A-Z]\.?)*) {_PARTICLES}({_WORD})(?![\w-])")
_TITLES = re.compile(r"^(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Herr|Frau|Mme|M)\.? )+")
_WHOLE_NAME = re.compile(rf"^{_WORD}(?: {_WORD}){{0,2}} {_PARTICLES}{_WORD}$")
_NOT_A_PERSON = re.compile(
    r"\b(?:Ltd|Limited|Inc|LLC|PLC|Plc|GmbH|AG|KG|S\.?A|S\.?L|S\.?Coop|SARL|BV|NV|Group|Sons|Co|Ville|Town|City|Street|Road)\b"
)


@functools.cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """First and last names of several locales, from the lists Faker ships (lower-case)."""
    import importlib

    first: set[str] = set()
    last: set[str] = set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first |= {n.lower() for n in _names(getattr(provider, attr, ()))}
        last |= {n.lower() for n in _names(getattr(provider, "last_names", ()))}
    return frozenset(first), frozenset(last)


def _names(source: dict[str, object] | list[str] | tuple[str, ...]) -> list[str]:
    return list(source.keys()) if isinstance(source, dict) else list(source)


def find_name(value: str) -> bool:
    """A known first name followed by a known last name (any part of a double-barrelled one); or, when the
    whole value is two to four capitalised words, a known first name followed by any surname."""
    if " " not in value:
        return False
    first, last = name_lists()
    text = _TITLES.sub("", value.strip())
    if _NOT_A_PERSON.search(text):
        return False
    whole = bool(_WHOLE_NAME.match(text))
    for match in _NAME.finditer(text):
        start = match.start()
        if start >= 2 and text[start - 1] == " " and text[start - 2].isdigit():
            continue  # "12 Alan Mills" is a street
        if match.group(1).split("-")[0].lower() not in first:
            continue
        surname = match.group(3).lower()
        if whole or any(part in last for part in surname.split("-")):
            return True
    return False


DETECTORS: tuple[Detector, ...] = (
    Detector("email", "e-mail address", find_email),
    Detector("phone", "phone number", find_phone),
    Detector("iban", "IBAN", find_iban),
    Detector("card", "payment card number", find_card),
    Detector("us_ssn", "US social security number", find_ssn),
    Detector("uk_nino", "UK National Insurance number", find_nino),
    Detector("address", "postal address", find_address),
    Detector("person_name", "person name", find_name),
)
DETECTOR_NAMES = tuple(d.name for d in DETECTORS)


def classify(value: str) -> list[str]:
    """Every detector that finds something in one value (used by tests and the sample-set benchmark)."""
    return [d.name for d in DETECTORS if d.find(value)]


def is_synthetic_marker(value: str) -> bool:
    return SYNTHETIC_DOMAIN in value
