"""What the CLI asks of the conformance suite and the evidence pack: verify a site, write and check a pack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.verify import VerifyResult, run_verify
from provisioner.errors import InputError, ProvisionError
from provisioner.releases.service import ReleaseBook
from provisioner.report.collect import collect
from provisioner.report.manifest import verify_pack
from provisioner.report.pack import default_folder, write_pack
from provisioner.site.load import LoadedSite
from provisioner.workspace.site_state import SiteState


@dataclass
class Verification:
    result: VerifyResult
    releases_verified: list[dict[str, str]]
    ledger_problem: str | None  # why the run could not be recorded in the release ledger


@dataclass
class Pack:
    folder: Path
    data: dict[str, Any]


def control_title(control_id: str) -> str:
    return CONTROLS[control_id].title if control_id in CONTROLS else ""


def verify(site: LoadedSite, workers: int, keys_dir: Path | None, select: str | None) -> Verification:
    """Run the conformance suite; a full run is recorded in the release ledger for each environment running a
    release (CHG-1)."""
    result = run_verify(site, workers=workers, keys_dir=keys_dir, select=select)
    if select is not None:
        return Verification(result, [], None)
    try:
        entries = ReleaseBook.open(site).record_verify(result.run_dir, result.ok)
    except ProvisionError as exc:
        return Verification(result, [], str(exc))
    recorded = [{"env": e["env"], "release": e["release"], "result": e["result"]} for e in entries]
    return Verification(result, recorded, None)


def write_report(site: LoadedSite, out_dir: Path | None) -> Pack:
    state = SiteState(site.name)
    data = collect(site, state)
    return Pack(write_pack(data, out_dir or default_folder(state), state), data)


def check_pack(folder: Path, key_file: Path | None) -> list[str]:
    """Every file of a pack against its signed manifest; the problems found (none: intact)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    if key_file is not None and not key_file.is_file():
        raise InputError(f"--key: {key_file}: no such file")
    return verify_pack(folder, key_file.read_text().strip() if key_file is not None else None)
