"""Signatures over evidence (release ledger, verify results, report manifests) with the site's own ed25519 key.

The key pair lives in the site's state (`signing/evidence_ed25519`, private half mode 0600) and survives a
destroy, so old evidence stays verifiable. Signatures are OpenSSH signatures (`ssh-keygen -Y sign`), which
anyone can check with stock OpenSSH and the public key: no tool of ours is needed to audit them.
"""

from __future__ import annotations

import base64
import binascii
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from provisioner.errors import ProvisionError
from provisioner.workspace.site_state import SiteState, ensure_key_pair

KEY_NAME = "evidence_ed25519"


def signing_key(state: SiteState) -> Path:
    """The private key's path; the pair is created on first use, and its fingerprint printed then (on stderr, so
    output for scripts stays clean): the auditor pins it, as a pack carries its own copy of the public key."""
    state.ensure()
    state.signing_dir.mkdir(mode=0o700, exist_ok=True)
    key = state.signing_dir / KEY_NAME
    created = not key.exists()
    public = ensure_key_pair(key, f"evidence@{state.site}")
    if created:
        sys.stderr.write(
            f"created the evidence signing key of site '{state.site}': {fingerprint(public)} ({identity(state)}); "
            "give this fingerprint to your auditor (every `provision report` prints it again)\n"
        )
    return key


def public_key(state: SiteState) -> str:
    """'ssh-ed25519 AAAA... evidence@site'."""
    return Path(f"{signing_key(state)}.pub").read_text().strip()


def existing_public_key(state: SiteState) -> str | None:
    """The public key if the pair exists; None otherwise (reading evidence never creates a key)."""
    public = state.signing_dir / f"{KEY_NAME}.pub"
    return public.read_text().strip() if public.is_file() else None


def fingerprint(public: str) -> str:
    """A public key's SHA256 fingerprint as `ssh-keygen -l` prints it: 'SHA256:...'."""
    result = _ssh_keygen(["-l", "-f", "-"], public.strip().encode() + b"\n")
    return result.stdout.decode().split()[1]


def identity(state: SiteState) -> str:
    """The signer identity written in allowed_signers files."""
    return f"evidence@{state.site}"


def sign(state: SiteState, data: bytes, namespace: str) -> str:
    """An armored SSH signature of `data` (text starting '-----BEGIN SSH SIGNATURE-----')."""
    key = signing_key(state)
    result = _ssh_keygen(["-Y", "sign", "-q", "-f", str(key), "-n", namespace], data)
    return result.stdout.decode().strip()


def verify(public: str, signer: str, data: bytes, signature: str, namespace: str) -> str | None:
    """None when `signature` is a valid signature by `public` over `data`; otherwise the reason."""
    with tempfile.TemporaryDirectory(prefix="provision-verify-") as tmp:
        allowed = Path(tmp) / "allowed_signers"
        allowed.write_text(f'{signer} namespaces="{namespace}" {public.strip()}\n')
        sig = Path(tmp) / "data.sig"
        sig.write_text(signature.strip() + "\n")
        result = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", signer, "-n", namespace, "-s", str(sig)],
            input=data,
            capture_output=True,
            check=False,
        )
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).decode(errors="replace").strip() or "signature does not verify"


SSHSIG_MAGIC = b"SSHSIG"


def signature_signer(signature: str) -> tuple[str, str] | None:
    """The public key ('ssh-ed25519 AAAA...') and the namespace an armored SSH signature names, read from the
    signature itself (the SSHSIG format of OpenSSH's PROTOCOL.sshsig); None when the text is not such a signature.
    This says who claims to have signed, not that the signature holds: `verify` checks that."""
    body = "".join(line.strip() for line in signature.strip().splitlines()[1:-1])
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not blob.startswith(SSHSIG_MAGIC):
        return None
    fields = _ssh_strings(blob[len(SSHSIG_MAGIC) + 4 :], 2)
    if fields is None:
        return None
    key_blob, namespace = fields
    key_type = _ssh_strings(key_blob, 1)
    if key_type is None:
        return None
    try:
        return f"{key_type[0].decode('ascii')} {base64.b64encode(key_blob).decode()}", namespace.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _ssh_strings(data: bytes, count: int) -> list[bytes] | None:
    """The first `count` SSH wire strings (uint32 length, then the bytes) of `data`; None when it is too short."""
    out, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(data):
            return None
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        if offset + 4 + length > len(data):
            return None
        out.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return out


def _ssh_keygen(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["ssh-keygen", *args], input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise ProvisionError(f"ssh-keygen {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")
    return result
