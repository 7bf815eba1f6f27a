"""`provision verify` signs its results.json where it writes it (issue 18, item 6): the real verify runs the real
conformance suite (with a -k that selects no check, so no host is needed), and stock `ssh-keygen -Y verify`
accepts the signature beside results.json, by the site's evidence key, in the `provision-results` namespace."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from helpers import EXAMPLE

from provisioner.conformance.history import read_history
from provisioner.conformance.verify import VerifyResult, run_verify
from provisioner.site.load import load_site
from provisioner.workspace import signing
from provisioner.workspace.site_state import SiteState


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> tuple[SiteState, VerifyResult]:
    root = tmp_path_factory.mktemp("verify-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVISION_STATE_DIR", str(root))
        state = SiteState("example")
        state.ensure()
        state.known_hosts.write_text("")  # as after `provision apply`
        result = run_verify(load_site(EXAMPLE), workers=1, select="no_check_is_named_this")
    return state, result


def stock_verify(folder: Path, public: str, namespace: str = "provision-results") -> subprocess.CompletedProcess[str]:
    """What an auditor runs, with an allowed_signers file naming the site's evidence key."""
    allowed = folder.parent / "allowed_signers"
    allowed.write_text(f'evidence@example namespaces="provision-results" {public}\n')
    return subprocess.run(
        f"ssh-keygen -Y verify -f {allowed} -I evidence@example -n {namespace} -s results.json.sig < results.json",
        shell=True, cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_results_json_is_signed_and_stock_ssh_keygen_accepts_it(verified):
    state, result = verified
    assert result.pytest_rc == 5 and result.results == [], "the suite ran and selected nothing"
    assert sorted(p.name for p in result.run_dir.iterdir()) == [
        "attempts.json", "junit.xml", "pytest.log", "results.json", "results.json.sig",
    ]  # fmt: skip
    public = signing.public_key(state)
    checked = stock_verify(result.run_dir, public)
    assert checked.returncode == 0, checked.stderr
    fingerprint = signing.fingerprint(public)
    assert f'Good "provision-results" signature for evidence@example with ED25519 key {fingerprint}' in checked.stdout
    assert result.signed is not None and result.signed.fingerprint == fingerprint


def test_the_signature_is_in_its_own_namespace(verified):
    state, result = verified
    other = stock_verify(result.run_dir, signing.public_key(state), namespace="provision-report")
    assert other.returncode != 0 and "namespace" in other.stderr, "a results signature is no pack signature"


def test_the_signed_content_names_its_run_and_its_finish_time(verified):
    _, result = verified
    payload = json.loads((result.run_dir / "results.json").read_text())
    assert payload["run"] == result.run_dir.name
    assert payload["finished"] and payload["results"] == [] and payload["waivers"] == []


def test_the_history_records_the_results_digest_and_the_signer(verified):
    state, result = verified
    [entry] = read_history(state)
    digest = "sha256:" + hashlib.sha256((result.run_dir / "results.json").read_bytes()).hexdigest()
    assert entry["run"] == result.run_dir.name and entry["results_digest"] == digest
    assert entry["signer"] == signing.fingerprint(signing.public_key(state))


def test_the_run_records_the_attempts_since_the_previous_run(verified):
    """The first run has no earlier run to count from; the gateway's host key is not pinned in this state, so no
    connection was tried, and the run's end is kept for the next run (issue 21, item 2)."""
    state, result = verified
    [entry] = read_history(state)
    found = json.loads((result.run_dir / "attempts.json").read_text())
    assert entry["attempts"] == found
    assert found["since"] is None and found["gateway"]["read"] is False and found["logs"]["read"] is False
    assert found["window"].startswith("no earlier run")
    kept = json.loads((state.evidence_dir / "attempts-state.json").read_text())
    assert kept["end"]["counters"] is None
    assert kept["end"]["why"] == "the gateway 10.90.0.254's host key is not known here (`provision apply` pins it)"


def test_a_changed_byte_fails_the_stock_check(verified, tmp_path):
    import shutil

    state, result = verified
    copy = Path(shutil.copytree(result.run_dir, tmp_path / result.run_dir.name))
    data = bytearray((copy / "results.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "results.json").write_bytes(bytes(data))
    checked = stock_verify(copy, signing.public_key(state))
    assert checked.returncode != 0 and "Signature verification failed" in checked.stderr, checked.stderr
