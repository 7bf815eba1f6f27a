"""`provision report` refuses a verify run whose results are not as `provision verify` signed them (issue 18,
item 6): the real command line, on a site state holding a signed run that was then edited; exit 1, a message naming
the run folder and what is wrong, and no pack written. The refusal comes before the backend is asked anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import EXAMPLE, run_cli
from report_fixtures import recorded_results
from verify_runs import RUN, write_run

from provisioner.conformance.signed_results import NAMESPACE, SignedRun
from provisioner.workspace import signing
from provisioner.workspace.site_state import SiteState

OLDER = "20261123T060000Z-verify-c0ffee"  # a signed run before it: never taken in the refused run's place


def flip_a_byte(run: SignedRun, tmp_path: Path) -> None:
    results = run.folder / "results.json"
    data = bytearray(results.read_bytes())
    data[data.index(b'"pass"') + 1] ^= 0x01  # "pass" -> "qass": still JSON, no longer what was signed
    results.write_bytes(bytes(data))


def delete_the_signature(run: SignedRun, tmp_path: Path) -> None:
    (run.folder / "results.json.sig").unlink()


def sign_with_another_key(run: SignedRun, tmp_path: Path) -> None:
    results = run.folder / "results.json"
    results.write_bytes(results.read_bytes().replace(b'"pass"', b'"fail"', 1))
    other = SiteState("example", tmp_path / "someone-else")
    (run.folder / "results.json.sig").write_text(signing.sign(other, results.read_bytes(), NAMESPACE) + "\n")


@pytest.mark.parametrize(
    ("tamper", "what"),
    [
        (flip_a_byte, "signature does not match (file changed after verify)"),
        (delete_the_signature, "no signature: results.json.sig is missing"),
        (sign_with_another_key, "signed by another key (SHA256:"),
    ],
)
def test_report_refuses_results_not_signed_as_verify_wrote_them(
    tmp_path: Path, tamper: Callable[[SignedRun, Path], None], what: str
):
    state = SiteState("example", tmp_path / "state" / "example")
    write_run(state, {**recorded_results(), "finished": "2026-11-23T06:00:00+00:00"}, OLDER)
    run = write_run(state, recorded_results(), RUN)
    tamper(run, tmp_path)
    result = run_cli("report", str(EXAMPLE), env={"PROVISION_STATE_DIR": str(tmp_path / "state")})
    message = " ".join(result.stderr.split())
    assert result.rc == 1, result.stdout + result.stderr
    assert message.startswith(
        f"error: refusing the latest verify run (by its recorded finish time): verify run {RUN} ({run.folder}): {what}"
    ), message
    assert OLDER not in message and "Traceback" not in result.stderr
    assert not (state.evidence_dir / "reports").exists(), "no pack is written from refused results"


def test_report_json_error_for_scripts(tmp_path: Path):
    state = SiteState("example", tmp_path / "state" / "example")
    run = write_run(state, recorded_results(), RUN)
    delete_the_signature(run, tmp_path)
    result = run_cli("report", str(EXAMPLE), "--json", env={"PROVISION_STATE_DIR": str(tmp_path / "state")})
    assert result.rc == 1 and result.json["exit_code"] == 1
    assert f"verify run {RUN} ({run.folder}): no signature" in result.json["error"]
