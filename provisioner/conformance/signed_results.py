"""A verify run's results.json, signed where it is written and checked where it is read.

`provision verify` signs its results.json with the site's evidence key (the key that signs the release ledger and
the evidence packs) in a namespace of its own, `provision-results`; the signature sits beside it as
results.json.sig, an OpenSSH signature anyone can check with `ssh-keygen -Y verify`. The signed content names its
run folder and the time the suite finished. `provision report` takes the latest run by that time and refuses it,
saying why, when it is unsigned or its signature does not hold: an edited run never yields an evidence pack, and
an older run is never taken in its place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import ProvisionError
from provisioner.workspace import signing
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState

NAMESPACE = "provision-results"
RESULTS_FILE = "results.json"
SIGNATURE_FILE = "results.json.sig"
RUN_GLOB = "*-verify-*"
AGAIN = "run `provision verify` again for a signed run"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SignedRun:
    """A verify run whose results.json holds its signature: the exact bytes, as signed, and what they say."""

    folder: Path
    payload: dict[str, Any]
    data: bytes
    signature: str
    public_key: str  # 'ssh-ed25519 AAAA...' of the key that signed it: the site's evidence key
    fingerprint: str

    @property
    def run(self) -> str:
        return self.folder.name

    @property
    def finished(self) -> str:
        return str(self.payload.get("finished", ""))

    @property
    def digest(self) -> str:
        return digest(self.data)

    def as_dict(self) -> dict[str, str]:
        """How the report names the run it was made from."""
        return {
            "run": self.run,
            "finished": self.finished,
            "digest": self.digest,
            "signer": self.fingerprint,
            "namespace": NAMESPACE,
        }


def write_signed(state: SiteState, run_dir: Path, payload: dict[str, Any]) -> SignedRun:
    """Write results.json (naming its run folder) and sign it with the site's evidence key, beside it."""
    payload = {**payload, "run": run_dir.name}
    data = json.dumps(payload, indent=1).encode()
    write_atomic(run_dir / RESULTS_FILE, data)
    signature = signing.sign(state, data, NAMESPACE)
    write_atomic(run_dir / SIGNATURE_FILE, signature + "\n")
    public = signing.public_key(state)
    return SignedRun(run_dir, payload, data, signature + "\n", public, signing.fingerprint(public))


class UnsignedResults(ProvisionError):
    """A verify run whose results cannot be trusted: unsigned, changed after verify, or signed by another key."""


def check_run(state: SiteState, run_dir: Path) -> SignedRun:
    """The run's results as verify signed them; UnsignedResults naming the run folder and what is wrong."""

    def refuse(what: str) -> UnsignedResults:
        return UnsignedResults(f"verify run {run_dir.name} ({run_dir}): {what}; {AGAIN}")

    results, sig_file = run_dir / RESULTS_FILE, run_dir / SIGNATURE_FILE
    if not results.is_file():
        raise refuse(f"no {RESULTS_FILE} (its signature {SIGNATURE_FILE} is there: the results were removed)")
    if not sig_file.is_file():
        raise refuse(
            f"no signature: {SIGNATURE_FILE} is missing, so nothing proves {RESULTS_FILE} is what verify wrote "
            "(a run of an older version, or the signature was removed)"
        )
    try:
        data, signature = results.read_bytes(), sig_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise refuse(f"cannot be read ({exc})") from None
    site_key = signing.existing_public_key(state)
    if site_key is None:
        raise refuse(
            f"the site's evidence key ({state.signing_dir / signing.KEY_NAME}.pub) is missing on this controller, "
            "so the signature cannot be checked"
        )
    claimed = signing.signature_signer(signature)
    if claimed is None:
        raise refuse(f"signature does not match: {SIGNATURE_FILE} is not an SSH signature (damaged)")
    key, namespace = claimed
    if key.split()[:2] != site_key.split()[:2]:
        raise refuse(
            f"signed by another key ({signing.fingerprint(key)}), not by the site's evidence key "
            f"{signing.fingerprint(site_key)}"
        )
    if namespace != NAMESPACE:
        raise refuse(f"signature does not match: signed for {namespace!r}, not as verify results ({NAMESPACE!r})")
    if signing.verify(site_key, signing.identity(state), data, signature, NAMESPACE) is not None:
        raise refuse(f"signature does not match (file changed after verify): {RESULTS_FILE} is not what was signed")
    try:
        payload = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise refuse(f"{RESULTS_FILE} cannot be read ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise refuse(f"{RESULTS_FILE}: no 'results' list")
    if payload.get("run") != run_dir.name:
        raise refuse(f"signed as the results of run {str(payload.get('run'))[:80]!r}: moved here from another folder")
    return SignedRun(run_dir, payload, data, signature, site_key, signing.fingerprint(site_key))


def latest_run(state: SiteState) -> Path:
    """The latest verify run folder by the finish time its results record (by the time in its folder's name where
    the results cannot be read): a run with results or a signature counts, so a damaged latest run is refused by
    `check_run`, never passed over for an older one."""
    folders = [
        p
        for p in (state.runs_dir.glob(RUN_GLOB) if state.runs_dir.is_dir() else [])
        if p.is_dir() and ((p / RESULTS_FILE).is_file() or (p / SIGNATURE_FILE).is_file())
    ]
    if not folders:
        raise ProvisionError(f"site '{state.site}' has no verify run with results: run `provision verify` first")
    return max(folders, key=lambda p: (_recorded_time(p), p.name))


def latest_signed_run(state: SiteState) -> SignedRun:
    """The latest verify run, checked: UnsignedResults when it is unsigned or its signature does not hold."""
    run_dir = latest_run(state)
    try:
        return check_run(state, run_dir)
    except UnsignedResults as exc:
        raise UnsignedResults(f"refusing the latest verify run (by its recorded finish time): {exc}") from None


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _recorded_time(run_dir: Path) -> dt.datetime:
    try:
        payload = json.loads((run_dir / RESULTS_FILE).read_bytes())
        finished = dt.datetime.fromisoformat(payload["finished"])
    except (OSError, ValueError, KeyError, TypeError):
        return _folder_time(run_dir)
    return finished if finished.tzinfo else finished.replace(tzinfo=dt.UTC)


def _folder_time(run_dir: Path) -> dt.datetime:
    """The time in a run folder's name (20261124T060000Z-verify-…, as new_run_dir names it)."""
    try:
        return dt.datetime.strptime(run_dir.name.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return EPOCH
