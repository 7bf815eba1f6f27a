"""Keyed fingerprints of production identifiers: HMAC-SHA256 over a canonical form of each value.

They are computed inside PostgreSQL on the production host, so production values never leave it; the
key lives with the controller (site state, mode 0600) and reaches the host only for the query, on stdin.
Non-production values are fingerprinted the same way on the controller and looked up in the set: a
match names the table and column, never the value.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

MIN_CANONICAL = 6  # shorter canonical forms (country codes, small numbers) identify nobody
_KEEP = b"abcdefghijklmnopqrstuvwxyz0123456789@"
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
BLOCK = 64


def canonical(value: str) -> bytes:
    """Lower case, ASCII letters, digits and '@' only: 'J.Smith@Mail.com ' and 'jsmith@mail.com' agree."""
    return value.lower().encode("ascii", "ignore").translate(None, _DELETE)


# The same canonical form in SQL (kept in step with canonical()).
SQL_CANONICAL = "regexp_replace(lower({expr}), '[^a-z0-9@]', '', 'g')"


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


@dataclass
class Fingerprints:
    key: bytes
    digests: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        inner, outer = _pads(self.key)
        self._inner = hashlib.sha256(inner)
        self._outer = hashlib.sha256(outer)

    def of(self, value: str) -> bytes | None:
        form = canonical(value)
        if len(form) < MIN_CANONICAL:
            return None
        inner = self._inner.copy()
        inner.update(form)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:16]

    def matches(self, value: str) -> bool:
        digest = self.of(value)
        return digest is not None and digest in self.digests

    def __len__(self) -> int:
        return len(self.digests)

    def sql_variables(self) -> dict[str, str]:
        """psql variables for fingerprint_sql(): the HMAC pads, hex (sent on stdin, never on a command line)."""
        inner, outer = _pads(self.key)
        return {"fp_ipad": inner.hex(), "fp_opad": outer.hex()}


def fingerprint_sql(table: str, columns: list[str]) -> str:
    """A query returning the distinct fingerprints (hex, 16 bytes) of the columns' values in one table."""
    canon = [SQL_CANONICAL.format(expr=f'"{c}"::text') for c in columns]
    union = " UNION ALL ".join(f'SELECT {c} AS v FROM "{table}"' for c in canon)
    return (
        "SELECT DISTINCT encode(substring(sha256(decode(:'fp_opad', 'hex') || "
        "sha256(decode(:'fp_ipad', 'hex') || convert_to(v, 'UTF8'))) FROM 1 FOR 16), 'hex') "
        f"FROM ({union}) AS canon WHERE length(v) >= {MIN_CANONICAL}"
    )


def hmac_reference(key: bytes, value: str) -> bytes:
    """The standard library's HMAC, to prove the pad arithmetic above is HMAC-SHA256."""
    return hmac.digest(key, canonical(value), "sha256")[:16]
