"""Which verify run a report is made from, and when it refuses (issue 18, item 6): the latest run by the finish time
its signed results record; refused, naming the run and why, when that run is unsigned, changed after verify or
signed by another key — never passed over for an older run."""

from __future__ import annotations

import json
import shutil

import pytest
from report_fixtures import recorded_results
from verify_runs import write_run

from provisioner.conformance.signed_results import NAMESPACE, UnsignedResults
from provisioner.errors import ProvisionError
from provisioner.report.collect import latest_verify_run
from provisioner.workspace import signing
from provisioner.workspace.site_state import SiteState

OLD, NEW = "20261124T060000Z-verify-aaaaaa", "20261125T060000Z-verify-bbbbbb"


def finished_at(when: str) -> dict:
    return {**recorded_results(), "finished": when}


@pytest.fixture
def state(tmp_path) -> SiteState:
    return SiteState("example", tmp_path / "example")


def test_the_latest_signed_run_is_taken_and_named(state):
    write_run(state, finished_at("2026-11-24T06:00:00+00:00"), OLD)
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    run = latest_verify_run(state)
    assert run.run == NEW and run.data == newest.data and run.digest == newest.digest
    assert run.fingerprint == signing.fingerprint(signing.public_key(state))
    assert run.as_dict() == {"run": NEW, "finished": "2026-11-25T06:00:00+00:00", "digest": newest.digest,
                             "signer": run.fingerprint, "namespace": "provision-results"}  # fmt: skip


def test_the_time_in_the_signed_results_decides_not_the_folder_name(state):
    write_run(state, finished_at("2026-11-26T06:00:00+00:00"), OLD)  # its name sorts first, it finished last
    write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    assert latest_verify_run(state).run == OLD


def refusal(state: SiteState) -> str:
    with pytest.raises(UnsignedResults) as caught:
        latest_verify_run(state)
    return str(caught.value)


def test_a_flipped_byte_is_refused_as_changed_after_verify_and_no_older_run_is_used(state):
    write_run(state, finished_at("2026-11-24T06:00:00+00:00"), OLD)
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    results = newest.folder / "results.json"
    data = bytearray(results.read_bytes())
    index = data.index(b'"pass"') + 2
    data[index] ^= 0x01
    results.write_bytes(bytes(data))
    message = refusal(state)
    assert message.startswith(f"refusing the latest verify run (by its recorded finish time): verify run {NEW} (")
    assert "signature does not match (file changed after verify)" in message
    assert str(newest.folder) in message and OLD not in message


def test_a_deleted_signature_is_refused_as_no_signature(state):
    write_run(state, finished_at("2026-11-24T06:00:00+00:00"), OLD)
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    (newest.folder / "results.json.sig").unlink()
    message = refusal(state)
    assert f"verify run {NEW} ({newest.folder}): no signature: results.json.sig is missing" in message


def test_deleted_results_beside_their_signature_are_refused_not_skipped(state):
    write_run(state, finished_at("2026-11-24T06:00:00+00:00"), OLD)
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    (newest.folder / "results.json").unlink()  # the folder's name is the run's time now
    assert f"verify run {NEW} ({newest.folder}): no results.json" in refusal(state)


def test_results_re_signed_by_another_key_are_refused(state, tmp_path):
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    results = newest.folder / "results.json"
    results.write_bytes(results.read_bytes().replace(b'"pass"', b'"fail"', 1))
    other = SiteState("example", tmp_path / "someone-else")
    (newest.folder / "results.json.sig").write_text(signing.sign(other, results.read_bytes(), NAMESPACE) + "\n")
    message = refusal(state)
    theirs, ours = (signing.fingerprint(signing.public_key(s)) for s in (other, state))
    assert f"verify run {NEW} ({newest.folder}): signed by another key ({theirs}), not by the site's evidence key " \
           f"{ours}" in message  # fmt: skip


def test_a_signature_of_another_kind_by_the_site_key_is_refused(state):
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    results = newest.folder / "results.json"
    (newest.folder / "results.json.sig").write_text(signing.sign(state, results.read_bytes(), "provision-report"))
    assert "signature does not match: signed for 'provision-report', not as verify results" in refusal(state)


def test_a_damaged_signature_file_is_refused(state):
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    (newest.folder / "results.json.sig").write_text("-----BEGIN SSH SIGNATURE-----\nnot base64!\n")
    assert "signature does not match: results.json.sig is not an SSH signature (damaged)" in refusal(state)


def test_a_signed_run_copied_into_another_folder_is_refused(state):
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    moved = state.runs_dir / "20261126T060000Z-verify-cccccc"
    shutil.copytree(newest.folder, moved)
    shutil.rmtree(newest.folder)
    assert f"signed as the results of run '{NEW}': moved here from another folder" in refusal(state)


def test_a_run_of_an_older_version_without_signature_is_refused_with_what_to_do(state):
    folder = state.runs_dir / NEW
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(finished_at("2026-11-25T06:00:00+00:00")))
    signing.public_key(state)  # the site has its evidence key
    message = refusal(state)
    assert "no signature" in message and message.endswith("run `provision verify` again for a signed run")


def test_without_the_sites_evidence_key_nothing_can_be_checked(state):
    newest = write_run(state, finished_at("2026-11-25T06:00:00+00:00"), NEW)
    for name in ("evidence_ed25519", "evidence_ed25519.pub"):
        (state.signing_dir / name).unlink()
    assert f"verify run {NEW} ({newest.folder}): the site's evidence key" in refusal(state)
    assert not (state.signing_dir / "evidence_ed25519.pub").exists(), "reading evidence never makes a key"


def test_no_run_at_all_says_what_to_run(state):
    with pytest.raises(ProvisionError, match="has no verify run with results: run `provision verify` first"):
        latest_verify_run(state)
