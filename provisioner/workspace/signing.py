"""Signatures over evidence (release ledger, report manifests) with the site's own ed25519 key.

The key pair lives in the site's state (`signing/evidence_ed25519`, private half mode 0600) and survives a
destroy, so old evidence stays verifiable. Signatures are OpenSSH signatures (`ssh-keygen -Y sign`), which
anyone can check with stock OpenSSH and the public key: no tool of ours is needed to audit them.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from provisioner.errors import ProvisionError
from provisioner.workspace.site_state import SiteState, ensure_key_pair

KEY_NAME = "evidence_ed25519"


def signing_key(state: SiteState) -> Path:
    """The private key's path; the pair is created on first use."""
    state.ensure()
    state.signing_dir.mkdir(mode=0o700, exist_ok=True)
    key = state.signing_dir / KEY_NAME
    ensure_key_pair(key, f"evidence@{state.site}")
    return key


def public_key(state: SiteState) -> str:
    """'ssh-ed25519 AAAA... evidence@site'."""
    return Path(f"{signing_key(state)}.pub").read_text().strip()


def existing_public_key(state: SiteState) -> str | None:
    """The public key if the pair exists; None otherwise (reading evidence never creates a key)."""
    public = state.signing_dir / f"{KEY_NAME}.pub"
    return public.read_text().strip() if public.is_file() else None


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


def _ssh_keygen(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["ssh-keygen", *args], input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise ProvisionError(f"ssh-keygen {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")
    return result
