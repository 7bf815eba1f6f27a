"""The verify run a pack was made from, carried in the pack: its results.json and the signature `provision verify`
made over it (namespace `provision-results`, the site's evidence key), under verify-run/<run folder>/, so an
auditor checks with stock `ssh-keygen -Y verify` that the results are the ones verify wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioner.conformance.signed_results import NAMESPACE, RESULTS_FILE, SIGNATURE_FILE
from provisioner.workspace import signing

FOLDER = "verify-run"


def paths(run: str) -> tuple[str, str]:
    """The pack-relative paths of a run's results.json and its signature."""
    return f"{FOLDER}/{run}/{RESULTS_FILE}", f"{FOLDER}/{run}/{SIGNATURE_FILE}"


def files(report: dict[str, Any]) -> dict[str, bytes]:
    """Pack-relative path -> the exact bytes verify wrote (never masked: a changed byte breaks the signature)."""
    run_files: dict[str, bytes] = report.get("verify_run_files") or {}
    if not run_files:
        return {}
    results, signature = paths(report["verify_results"]["run"])
    return {results: run_files[RESULTS_FILE], signature: run_files[SIGNATURE_FILE]}


def problems(folder: Path, public: str, signer: str) -> list[str]:
    """Each run's results in a pack against the signature beside it, by `public`; the problems, naming the file."""
    found: list[str] = []
    for results in sorted(folder.glob(f"{FOLDER}/*/{RESULTS_FILE}")):
        name = results.relative_to(folder).as_posix()
        signature = results.with_name(SIGNATURE_FILE)
        if not signature.is_file():
            found.append(f"{name}: no signature ({SIGNATURE_FILE} is missing beside it)")
            continue
        reason = signing.verify(public, signer, results.read_bytes(), signature.read_text(errors="replace"), NAMESPACE)
        if reason is not None:
            found.append(f"{name}: the signature verify made over it does not verify ({reason.splitlines()[0]})")
    return found
