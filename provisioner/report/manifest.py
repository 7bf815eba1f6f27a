"""The pack's checksum manifest and its signature.

`MANIFEST.sha256` lists every file of the pack with its SHA-256 (`sha256sum` format, so `sha256sum -c` checks
it too); `MANIFEST.sha256.sig` is an OpenSSH signature over the manifest by the site's evidence key, whose
public half is in the pack (and listed in the manifest). `ssh-keygen -Y verify` checks it without our tools.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from provisioner.releases.artifacts import sha256_file
from provisioner.report import run_files
from provisioner.workspace import signing
from provisioner.workspace.site_state import SiteState

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"
PUBLIC_KEY = "evidence-signing-key.pub"
NAMESPACE = "provision-report"
SIGNER = "evidence"


def _pack_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, SIGNATURE)
    )


def write_manifest(folder: Path, state: SiteState) -> None:
    """Write the public key, then the manifest of every file, then the signature over the manifest."""
    (folder / PUBLIC_KEY).write_text(signing.public_key(state) + "\n")
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}\n" for p in _pack_files(folder)]
    manifest = "".join(lines).encode()
    (folder / MANIFEST).write_bytes(manifest)
    (folder / SIGNATURE).write_text(signing.sign(state, manifest, NAMESPACE) + "\n")


ARMOR_BEGIN, ARMOR_END, ARMOR_WIDTH = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----", 70


def _armor_problem(text: str) -> str | None:
    """The signature file must be exactly as `ssh-keygen -Y sign` armours it: a changed byte that decodes to
    the same signature (spare base64 bits, a trailing newline) is tampering too."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[0] != ARMOR_BEGIN or lines[-2] != ARMOR_END or lines[-1] != "":
        return "not an SSH signature armoured as ssh-keygen writes it"
    body = "".join(lines[1:-2])
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return "the signature is not valid base64"
    canonical = base64.b64encode(raw).decode()
    if [canonical[i : i + ARMOR_WIDTH] for i in range(0, len(canonical), ARMOR_WIDTH)] != lines[1:-2]:
        return "the signature's encoding differs from what ssh-keygen writes"
    return None


def verify_pack(folder: Path, trusted_key: str | None = None) -> list[str]:
    """Problems found, each naming a file; empty when every file matches and the signature holds."""
    problems: list[str] = []
    manifest_path, sig_path, key_path = folder / MANIFEST, folder / SIGNATURE, folder / PUBLIC_KEY
    for needed in (manifest_path, sig_path, key_path):
        if not needed.is_file():
            problems.append(f"{needed.name}: missing")
    if problems:
        return problems
    manifest = manifest_path.read_bytes()
    public = key_path.read_text(errors="replace").strip()
    if trusted_key is not None and public.split()[:2] != trusted_key.split()[:2]:
        problems.append(f"{PUBLIC_KEY}: not the site's evidence key")
    signature = sig_path.read_text(errors="replace")
    reason = _armor_problem(signature) or signing.verify(public, SIGNER, manifest, signature, NAMESPACE)
    if reason is not None:
        problems.append(f"{SIGNATURE}: the signature over {MANIFEST} does not verify ({reason.splitlines()[0]})")
    problems.extend(run_files.problems(folder, trusted_key or public, SIGNER))
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.decode(errors="replace").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or name.startswith("/") or ".." in Path(name).parts:
            problems.append(f"{MANIFEST}: line {number} is not '<sha256>  <file>'")
            continue
        listed[name] = digest
    for name, digest in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: listed in {MANIFEST} but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name}: SHA-256 does not match {MANIFEST}")
    for path in _pack_files(folder):
        name = path.relative_to(folder).as_posix()
        if name not in listed:
            problems.append(f"{name}: not listed in {MANIFEST}")
    return problems
