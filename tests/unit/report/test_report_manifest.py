"""The pack's signed manifest: any byte changed in any file, or a file added or removed, is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import run_cli
from report_fixtures import build_report
from verify_runs import RUN

from provisioner.conformance.signed_results import NAMESPACE
from provisioner.report.manifest import MANIFEST, PUBLIC_KEY, SIGNATURE, verify_pack
from provisioner.report.pack import write_pack
from provisioner.workspace.site_state import SiteState

SECRET = "s3cret-database-password-for-tests"
RESULTS_FORGED = "the signature verify made over it does not verify"


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> SiteState:
    state = SiteState("example", tmp_path_factory.mktemp("state") / "example")
    state.ensure()
    state.secrets_dir.mkdir()
    (state.secrets_dir / "db_password").write_text(SECRET + "\n")
    return state


@pytest.fixture(scope="module")
def pack(tmp_path_factory, state) -> Path:
    report = build_report(state=state)
    report["results"][0]["evidence"] = f"the log said password={SECRET}"  # a secret leaking into evidence
    return write_pack(report, tmp_path_factory.mktemp("pack") / "evidence", state)


def pack_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_intact_pack_verifies_with_our_tool_and_the_cli(pack):
    assert verify_pack(pack) == []
    result = run_cli("report", "verify", str(pack))
    assert result.rc == 0, result.stdout + result.stderr
    listed = {line.split("  ", 1)[1] for line in (pack / MANIFEST).read_text().splitlines()}
    assert listed == set(pack_files(pack)) - {MANIFEST, SIGNATURE} and PUBLIC_KEY in listed
    assert {f"verify-run/{RUN}/results.json", f"verify-run/{RUN}/results.json.sig"} <= listed, "the run is named"


def test_without_key_the_check_says_the_key_was_not_pinned(pack, state):
    from provisioner.workspace import signing

    result = run_cli("report", "verify", str(pack))
    assert result.rc == 0 and result.stdout.startswith("intact: every file of"), result.stdout + result.stderr
    fingerprint = signing.fingerprint(signing.public_key(state))
    assert (
        "origin not proven: the key was not pinned: the pack was checked only against the key it carries "
        f"({fingerprint}), so this proves the pack is intact, not who made it" in " ".join(result.stderr.split())
    )
    as_json = run_cli("report", "verify", str(pack), "--json")
    assert as_json.rc == 0 and as_json.json == {
        "pack": str(pack), "ok": True, "problems": [], "key_pinned": False, "signed_by": fingerprint,
    }  # fmt: skip


def test_manifest_is_sha256sum_format(pack):
    import subprocess

    result = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=pack, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("offset", ["first", "middle", "last"])
def test_flipping_one_byte_of_any_file_fails_and_names_it(pack, tmp_path, offset):
    for name in pack_files(pack):
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(pack, copy)
        target = copy / name
        data = bytearray(target.read_bytes())
        index = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[offset]
        data[index] ^= 0x01
        target.write_bytes(bytes(data))
        problems = verify_pack(copy)
        assert problems, f"a flipped byte at the {offset} of {name} went unnoticed"
        assert any(p.startswith(name) or name in p for p in problems), (name, problems)
        if offset == "middle" and name not in (MANIFEST, SIGNATURE):
            result = run_cli("report", "verify", str(copy))
            assert result.rc == 1 and name in result.stderr, (name, result.stderr)


def test_added_and_removed_files_fail(pack, tmp_path):
    added = tmp_path / "added"
    shutil.copytree(pack, added)
    (added / "extra.txt").write_text("planted")
    assert any("extra.txt" in p for p in verify_pack(added))
    removed = tmp_path / "removed"
    shutil.copytree(pack, removed)
    (removed / "report.json").unlink()
    assert any(p.startswith("report.json") for p in verify_pack(removed))


def test_a_pack_re_signed_by_another_key_fails_against_the_sites_key(pack, state, tmp_path):
    from provisioner.report.manifest import write_manifest
    from provisioner.workspace import signing

    forged = tmp_path / "forged"
    shutil.copytree(pack, forged)
    (forged / "report.html").write_text("<html>all good</html>")
    for name in (MANIFEST, SIGNATURE, PUBLIC_KEY):
        (forged / name).unlink()
    other = SiteState("example", tmp_path / "other-state")
    results = next(forged.glob("verify-run/*/results.json"))
    write_manifest(forged, other)
    problems = verify_pack(forged)
    assert len(problems) == 1 and problems[0].startswith(f"{results.relative_to(forged)}: {RESULTS_FORGED} ("), (
        "the verify run's results keep the site's signature: re-signing the manifest alone does not do",
        problems,
    )
    results.with_name("results.json.sig").write_text(signing.sign(other, results.read_bytes(), NAMESPACE) + "\n")
    for name in (MANIFEST, SIGNATURE, PUBLIC_KEY):
        (forged / name).unlink()
    write_manifest(forged, other)
    assert verify_pack(forged) == [], "self-consistent on its own"
    unpinned = run_cli("report", "verify", str(forged))
    assert unpinned.rc == 0 and "origin not proven: the key was not pinned" in unpinned.stderr
    trusted = signing.public_key(state)
    assert any(PUBLIC_KEY in p for p in verify_pack(forged, trusted_key=trusted))
    key_file = tmp_path / "site-evidence-key.pub"
    key_file.write_text(trusted + "\n")
    result = run_cli("report", "verify", str(forged), "--key", str(key_file))
    assert result.rc == 1 and PUBLIC_KEY in result.stderr
    assert f"{results.relative_to(forged)}: {RESULTS_FORGED}" in result.stderr
    pinned = run_cli("report", "verify", str(pack), "--key", str(key_file))
    assert pinned.rc == 0, pinned.stderr
    assert f"signed by the pinned key {signing.fingerprint(trusted)}" in pinned.stdout
    assert "not pinned" not in pinned.stdout + pinned.stderr


def test_no_secret_in_any_file_of_the_pack(pack, state):
    import subprocess

    secrets = [s for s in state.secret_values() if len(s) >= 8]
    assert SECRET in secrets
    texts = {name: (pack / name).read_bytes().decode(errors="replace") for name in pack_files(pack)}
    texts["report.pdf (text)"] = subprocess.run(
        ["pdftotext", str(pack / "report.pdf"), "-"], capture_output=True, text=True
    ).stdout
    assert "password=" in texts["report.html"], "the evidence line is there, masked"
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {name}"


def test_signed_results_holding_a_secret_known_now_are_not_packed(state, tmp_path):
    from report_fixtures import recorded_results

    from provisioner.errors import ProvisionError

    payload = recorded_results()
    payload["results"][0]["evidence"] = f"password={SECRET}"  # a secret verify did not know when it ran
    report = build_report(payload=payload, state=state)
    with pytest.raises(ProvisionError, match=f"verify-run/{RUN}/results.json: the verify run's results hold a secret"):
        write_pack(report, tmp_path / "pack", state)
    assert not (tmp_path / "pack").exists(), "nothing is written"


def test_verify_of_a_missing_folder_is_bad_input(tmp_path):
    result = run_cli("report", "verify", str(tmp_path / "nope"))
    assert result.rc == 2 and "no such folder" in result.stderr


def test_pdf_has_the_sections_of_the_html(pack):
    import subprocess

    text = " ".join(
        subprocess.run(["pdftotext", str(pack / "report.pdf"), "-"], capture_output=True, text=True).stdout.split()
    )
    import html

    page = html.unescape((pack / "report.html").read_text())
    headings = (
        "The auditor's three questions", "Controls", "Network diagram (from live state)", "Reachability matrix",
        "Access matrix", "Release history", "Waivers (ACC-7)", "Conformance trend",
        "Secure Development Policy — environment separation",
    )  # fmt: skip
    for heading in headings:
        assert heading in text, heading
        assert heading in page, heading


def test_a_pack_is_never_written_over_another(pack, state):
    from provisioner.errors import InputError

    with pytest.raises(InputError, match="not empty"):
        write_pack(build_report(), pack, state)
    assert verify_pack(pack) == []
