"""An auditor checks a pack with stock tools only (issue 17, item 3): the commands VERIFY.md writes are read back
out of it and run with bash, sha256sum and ssh-keygen in a copy of the pack — no code of ours is involved in the
checking. The pack holds decisions signed by the people who made them (with throwaway keys here), and a changed
byte in a file, the manifest, a signature or a statement makes the matching command fail for that reason."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixtures import build_report, run_in, signed_decision_ledger, verify_md_commands
from verify_runs import RUN

from provisioner.report.pack import write_pack
from provisioner.workspace.site_state import SiteState


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("stock")
    state = SiteState("example", root / "state")
    site, signers = signed_decision_ledger(root / "ledger", root / "people-keys")
    report = build_report(site, evidence_dir=root / "ledger", state=state)
    return write_pack(report, root / "pack", state), signers


@pytest.fixture
def copy(made, tmp_path) -> Path:
    """The pack as the auditor received it: a copy somewhere else."""
    return Path(shutil.copytree(made[0], tmp_path / "received"))


def command_for(folder: Path, needle: str) -> str:
    return next(c for c in verify_md_commands(folder) if needle in c)


def test_every_command_of_verify_md_succeeds_on_an_intact_copy(copy, made):
    commands = verify_md_commands(copy)
    assert commands[0] == "sha256sum -c MANIFEST.sha256"
    manifest_check = (
        "ssh-keygen -Y verify -f allowed_signers -I evidence@example -n provision-report "
        "-s MANIFEST.sha256.sig < MANIFEST.sha256"
    )
    assert commands[1] == manifest_check
    results_check = (
        f"ssh-keygen -Y verify -f allowed_signers -I evidence@example -n provision-results "
        f"-s verify-run/{RUN}/results.json.sig < verify-run/{RUN}/results.json"
    )
    assert commands[2] == results_check
    digest = json.loads((copy / "report.json").read_text())["verify_results"]["digest"]
    assert commands[3] == f"echo '{digest.removeprefix('sha256:')}  verify-run/{RUN}/results.json' | sha256sum -c -"
    decisions = [c for c in commands if "-n provision-decision" in c]
    assert decisions == [
        "ssh-keygen -Y verify -f allowed_signers -I bob -n provision-decision -s decisions/0001-create-r1.sig "
        "< decisions/0001-create-r1.txt",
        "ssh-keygen -Y verify -f allowed_signers -I erin -n provision-decision -s decisions/0004-approve-r1.sig "
        "< decisions/0004-approve-r1.txt",
    ]
    assert len(commands) == 6
    fingerprint = re.search(r"^    (SHA256:\S+)$", (copy / "VERIFY.md").read_text(), flags=re.M)[1]
    for command in commands:
        result = run_in(copy, command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    good = run_in(copy, manifest_check)
    assert f'Good "provision-report" signature for evidence@example with ED25519 key {fingerprint}' in good.stdout
    good = run_in(copy, results_check)
    assert f'Good "provision-results" signature for evidence@example with ED25519 key {fingerprint}' in good.stdout
    assert run_in(copy, commands[3]).stdout == f"verify-run/{RUN}/results.json: OK\n"
    listed = run_in(copy, commands[0]).stdout
    assert "decisions/0004-approve-r1.txt: OK" in listed and "allowed_signers: OK" in listed
    assert "VERIFY.md: OK" in listed and "policy.pdf: OK" in listed


def test_the_pack_keeps_the_signed_statement_bytes_and_names_every_signer(copy, made):
    _, signers = made
    statement = (copy / "decisions" / "0004-approve-r1.txt").read_bytes()
    assert "approuvé".encode() in statement and statement.endswith(b"four eyes\n")
    allowed = (copy / "allowed_signers").read_text().splitlines()
    namespaces = "provision-report,provision-results,provision-verify-history"
    assert allowed[1].startswith(f'evidence@example namespaces="{namespaces}" ssh-ed25519 ')
    for name, public in signers.items():
        key = " ".join(public.split()[:2])
        assert f'{name} namespaces="provision-decision" {key}' in allowed
    assert any(line.startswith('alice namespaces="provision-decision" ssh-ed25519 ') for line in allowed)


def flip(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


def assert_bad_signature(result: subprocess.CompletedProcess[str]) -> None:
    """ssh-keygen failed because the signature does not match, not because a file is missing."""
    assert result.returncode != 0
    assert "Signature verification failed" in result.stderr, result.stderr
    assert "No such file" not in result.stderr and "Couldn't" not in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["report.html", "decisions/0004-approve-r1.txt", "allowed_signers", "policy.md"])
def test_a_flipped_byte_in_a_listed_file_fails_sha256sum(copy, name):
    flip(copy / name, len((copy / name).read_bytes()) // 2)
    result = run_in(copy, command_for(copy, "sha256sum -c"))
    assert result.returncode != 0 and f"{name}: FAILED" in result.stdout, result.stdout


def test_an_altered_manifest_fails_its_signature(copy):
    flip(copy / "MANIFEST.sha256", 10)
    assert_bad_signature(run_in(copy, command_for(copy, "-n provision-report")))


def test_an_altered_manifest_signature_fails(copy):
    sig = copy / "MANIFEST.sha256.sig"
    lines = sig.read_text().split("\n")
    last = lines[-3]  # the last line of the armored body: the ed25519 signature's bytes
    middle = len(last) // 2
    lines[-3] = last[:middle] + ("A" if last[middle] != "A" else "B") + last[middle + 1 :]
    sig.write_text("\n".join(lines))
    assert_bad_signature(run_in(copy, command_for(copy, "-n provision-report")))


def test_an_altered_statement_fails_its_signer_check(copy):
    statement = copy / "decisions" / "0004-approve-r1.txt"
    statement.write_bytes(statement.read_bytes().replace(b"release: r1", b"release: r2"))
    assert_bad_signature(run_in(copy, command_for(copy, "0004-approve-r1.sig")))
    assert run_in(copy, command_for(copy, "0001-create-r1.sig")).returncode == 0, "the other decision still holds"


def test_altered_results_fail_their_signature_and_the_named_digest(copy):
    results = copy / "verify-run" / RUN / "results.json"
    original = results.read_bytes()
    results.write_bytes(original.replace(b'"status": "pass"', b'"status": "fail"', 1))  # one status changed
    assert results.read_bytes() != original
    assert_bad_signature(run_in(copy, command_for(copy, "-n provision-results")))
    named = run_in(copy, command_for(copy, "| sha256sum -c -"))
    assert named.returncode != 0 and f"verify-run/{RUN}/results.json: FAILED" in named.stdout, named.stdout


def test_the_report_names_the_run_it_was_made_from_in_every_format(made):
    folder, _ = made
    run = json.loads((folder / "report.json").read_text())["verify_results"]
    assert run["run"] == RUN and run["digest"].startswith("sha256:") and run["namespace"] == "provision-results"
    fingerprint = re.search(r"^    (SHA256:\S+)$", (folder / "VERIFY.md").read_text(), flags=re.M)[1]
    assert run["signer"] == fingerprint, "the results are signed by the key that signs the pack"
    results = folder / "verify-run" / RUN / "results.json"
    assert run["digest"] == "sha256:" + hashlib.sha256(results.read_bytes()).hexdigest()
    assert json.loads(results.read_text())["run"] == RUN, "the signed content names its run folder"
    page = (folder / "report.html").read_text()
    pdf = " ".join(
        subprocess.run(["pdftotext", str(folder / "report.pdf"), "-"], capture_output=True, text=True).stdout.split()
    ).replace(" ", "")
    verify_md = (folder / "VERIFY.md").read_text()
    manifest = (folder / "MANIFEST.sha256").read_text()
    oscal = (folder / "oscal-assessment-results.json").read_text()
    for where, text in (("HTML", page), ("VERIFY.md", verify_md), ("OSCAL", oscal)):
        for value in (RUN, run["digest"], run["signer"]):
            assert value in text, (where, value)
    for value in (RUN, run["digest"], run["signer"]):
        assert value.replace(" ", "") in pdf, ("PDF", value)
    assert f"{run['digest'].removeprefix('sha256:')}  verify-run/{RUN}/results.json\n" in manifest


def test_the_report_shows_the_evidence_key_and_the_verified_signers(made):
    folder, _ = made
    page = (folder / "report.html").read_text()
    fingerprint = re.search(r"^    (SHA256:\S+)$", (folder / "VERIFY.md").read_text(), flags=re.M)[1]
    assert fingerprint in page and fingerprint in (folder / "report.json").read_text()
    text = subprocess.run(["pdftotext", str(folder / "report.pdf"), "-"], capture_output=True, text=True).stdout
    assert fingerprint in text.replace("\n", "")
    assert 'id="decisions"' in page and page.count(">verified<") >= 2
    assert "approve by <b>erin</b>" in page, "Q3 names the signer of the last release's approval"


def test_the_fingerprint_is_printed_when_the_key_is_made_and_on_every_report(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from provisioner.cli import app
    from provisioner.engine import evidence

    # no lab: a recorded run, signed with the site's evidence key as verify signs it
    monkeypatch.setattr(evidence, "collect", lambda site, state: build_report(state=state))
    runner = CliRunner(env={"PROVISION_STATE_DIR": str(tmp_path / "state")})
    first = runner.invoke(app, ["report", "example", "--out", str(tmp_path / "one")])
    assert first.exit_code == 0, first.output
    fingerprint = re.search(r"fingerprint (SHA256:\S+):", first.stdout)[1]
    assert f"created the evidence signing key of site 'example': {fingerprint}" in first.stderr
    digest = json.loads((tmp_path / "one" / "report.json").read_text())["verify_results"]["digest"]
    named = f"from verify run {RUN} (finished 2026-11-24T06:00:00+00:00): results {digest}, signed by {fingerprint}"
    assert named in " ".join(first.stdout.split()), "the report names the run it used"
    second = runner.invoke(app, ["report", "example", "--out", str(tmp_path / "two"), "--json"])
    assert second.exit_code == 0 and "created" not in second.stderr, "the key is made once"
    assert json.loads(second.stdout)["evidence_key"] == fingerprint
    assert json.loads(second.stdout)["verify_results"] == {"run": RUN, "finished": "2026-11-24T06:00:00+00:00",
        "digest": digest, "signer": fingerprint, "namespace": "provision-results"}  # fmt: skip
    assert f"    {fingerprint}\n" in (tmp_path / "two" / "VERIFY.md").read_text()


def test_entries_that_cannot_be_checked_are_left_out_and_said_so(tmp_path):
    from report_fixtures import example_site

    from provisioner.report.decisions import signed_decisions

    good = {"seq": 1, "event": "approve", "release": "r1", "statement": "s", "signer": "erin",
            "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
            "signer_key": example_site().person("erin").ssh_key}  # fmt: skip
    entries = [
        {"seq": 1, "event": "deploy", "release": "r1"},  # not a signed decision: not mentioned
        {**good, "signature": ""},
        {**good, "seq": 2, "signer": "Robert'); --"},
        {**good, "seq": 3, "signer_key": "ssh-dss AAAA"},
        {**good, "seq": 4, "signature": "not armored"},
        {**good, "seq": 5, "statement": "\ud800"},
        {**good, "seq": 6, "event": "approve/../../x", "release": "r 1"},
    ]
    signed, left_out = signed_decisions(entries, example_site())
    assert [d["seq"] for d in signed] == [6] and not signed[0]["verified"], "a bad signature is shown, not hidden"
    assert signed[0]["statement_file"] == "decisions/0006-approve_.._.._x-r_1.txt", "no path leaves the folder"
    assert [reason.split(":")[0] for reason in left_out] == [f"ledger entry {n}" for n in (1, 2, 3, 4, 5)]
