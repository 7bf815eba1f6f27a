"""OpenSSH public keys as the site file lists them: parsed, not just pattern-matched.

A key is `<type> <base64 blob> [comment]`. The blob is the key in SSH wire format (RFC 4253 section 6.6,
RFC 5656, RFC 8709): the type name again, then the key's numbers. Reading it tells the real type, the size
of an RSA modulus and the curve of an ECDSA key, so weak keys are refused by what they are, not by their label.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

MIN_RSA_BITS = 3072
ALLOWED_HELP = (
    f"ssh-ed25519, ecdsa-sha2-nistp256/384/521, their FIDO (sk-) forms, or ssh-rsa of at least {MIN_RSA_BITS} bits"
)
_CURVES = {
    "ecdsa-sha2-nistp256": "nistp256",
    "ecdsa-sha2-nistp384": "nistp384",
    "ecdsa-sha2-nistp521": "nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com": "nistp256",
}
KEY_TYPES = ("ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ssh-rsa", *_CURVES)


@dataclass(frozen=True)
class PublicKey:
    kind: str
    blob: bytes  # the decoded key data: two keys are the same key when their blobs are equal
    bits: int

    @property
    def text(self) -> str:
        return f"{self.kind} {base64.b64encode(self.blob).decode()}"


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def string(self) -> bytes:
        if self.offset + 4 > len(self.data):
            raise ValueError("the key data ends early")
        (length,) = struct.unpack(">I", self.data[self.offset : self.offset + 4])
        start = self.offset + 4
        if start + length > len(self.data):
            raise ValueError("the key data ends early")
        self.offset = start + length
        return self.data[start : self.offset]

    def end(self) -> None:
        if self.offset != len(self.data):
            raise ValueError("the key data has extra bytes after the key")


def parse_public_key(value: str) -> PublicKey:
    """Parse one key line; ValueError with a message naming what is allowed."""
    odd = next((c for c in value.strip() if not c.isprintable() or c in "\u2028\u2029"), None)
    if odd is not None:
        raise ValueError(
            f"the key line holds the control character U+{ord(odd):04X} (it would land in authorized_keys); "
            "allowed: '<type> <base64> [comment]' in printable text"
        )
    parts = value.strip().split()
    if len(parts) < 2:
        raise ValueError(f"not an SSH public key; allowed: '<type> <base64> [comment]' of type {ALLOWED_HELP}")
    kind, body = parts[0], parts[1]
    if kind == "ssh-dss":
        raise ValueError(f"DSA keys (ssh-dss) are too weak; allowed: {ALLOWED_HELP}")
    if kind not in KEY_TYPES:
        raise ValueError(f"SSH key type '{kind[:40]}' is not allowed; allowed: {ALLOWED_HELP}")
    try:
        blob = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError(f"the SSH key body is not base64; allowed: {ALLOWED_HELP}") from None
    try:
        bits = _key_bits(kind, blob)
    except UnicodeDecodeError:
        raise ValueError(f"the SSH key data is malformed (a name is not text); allowed: {ALLOWED_HELP}") from None
    except ValueError as exc:
        raise ValueError(f"the SSH key data is malformed ({exc}); allowed: {ALLOWED_HELP}") from None
    if kind == "ssh-rsa" and bits < MIN_RSA_BITS:
        raise ValueError(f"this RSA key has {bits} bits; allowed: {ALLOWED_HELP}")
    return PublicKey(kind=kind, blob=blob, bits=bits)


def _key_bits(kind: str, blob: bytes) -> int:
    reader = _Reader(blob)
    embedded = reader.string().decode("ascii")
    if embedded != kind:
        raise ValueError(f"the data says '{embedded[:40]}' but the key is labelled '{kind}'")
    if kind == "ssh-rsa":
        exponent, modulus = reader.string(), reader.string()
        if not exponent or int.from_bytes(exponent, "big") < 3:
            raise ValueError("the RSA exponent is not usable")
        bits = int.from_bytes(modulus, "big").bit_length()
    elif kind in _CURVES:
        curve = reader.string().decode("ascii")
        if curve != _CURVES[kind]:
            raise ValueError(f"the curve '{curve[:20]}' does not match the type")
        point = reader.string()
        if not point.startswith(b"\x04"):
            raise ValueError("the curve point is not an uncompressed point")
        bits = {"nistp256": 256, "nistp384": 384, "nistp521": 521}[curve]
    else:
        if len(reader.string()) != 32:
            raise ValueError("an Ed25519 key is 32 bytes")
        bits = 256
    if kind.startswith("sk-"):
        reader.string()  # the FIDO application, usually "ssh:"
    reader.end()
    return bits


def check_public_key(value: str) -> str:
    """Pydantic validator: a parsed, allowed key, written back as `<type> <base64> [comment]`."""
    parse_public_key(value)
    return " ".join(value.strip().split())
