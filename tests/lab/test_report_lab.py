"""`provision report` on a real lab: the evidence pack from one verify run and live state.

On the shared lab: one verify, then a container that is not in the site file is started on the lab's dev bridge,
so the diagram drawn from live state must show it as a difference; it is removed again at the end.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import subprocess

import pytest
from conftest import DEMO_KEYS, verify_keys
from helpers import ROOT
from report_fixtures import run_in, verify_md_commands

from provisioner.backends.lxc import base_image, containers
from provisioner.backends.lxc.backend import LxcBackend
from provisioner.conformance.controls import CONTROLS
from provisioner.report.collect import QUESTIONS
from provisioner.report.manifest import MANIFEST, SIGNATURE

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(1500)]

KEYS = DEMO_KEYS
INTRUDER = "rptlab-intruder"
INTRUDER_ADDRESS = "10.91.10.99"
PACK_FILES = {
    "report.html", "report.pdf", "report.json", "junit.xml", "oscal-assessment-results.json",
    "network.svg", "network.dot", "evidence-signing-key.pub", MANIFEST, SIGNATURE,
    "policy.md", "policy.pdf", "allowed_signers", "VERIFY.md",
}  # fmt: skip


def _start_intruder(bridge: str) -> None:
    """A container without the site's labels, on the site's dev bridge, at an address the site file lacks."""
    lxcpath = base_image.lxc_path()
    rootfs = base_image.base_rootfs(lxcpath)
    directory = lxcpath / INTRUDER
    delta = containers.make_directory(directory)
    lines = containers.config_header("not managed by provisioner: a report test's intruder", INTRUDER, rootfs, delta)
    lines += containers.nic_config(0, bridge, "eth0", "02:88:00:00:00:99", f"{INTRUDER_ADDRESS}/24")
    lines.append("lxc.init.cmd = /bin/sleep infinity")
    containers.write_config(directory, "\n".join(lines) + "\n")
    containers.start(INTRUDER)


def _remove_intruder() -> None:
    lxcpath = base_image.lxc_path()
    if (lxcpath / INTRUDER).exists():
        containers.remove(lxcpath, INTRUDER, running=containers.is_running(INTRUDER))


@pytest.fixture(scope="module")
def built(lab, tmp_path_factory):
    verified = lab.cli("verify", str(lab.site_file), "--keys", str(verify_keys()), "--json")
    assert verified.rc == 0, verified.stdout[-3000:]
    _remove_intruder()  # a leftover of an interrupted earlier run
    _start_intruder(LxcBackend(lab.site, lab.state).bridge("dev"))
    try:
        pack = tmp_path_factory.mktemp("pack") / "evidence"
        made = lab.cli("report", str(lab.site_file), "--out", str(pack), "--json")
        assert made.rc == 0, made.stdout[-3000:] + made.stderr[-3000:]
        yield lab, pack, made.json, tmp_path_factory.mktemp("artifacts")
    finally:
        _remove_intruder()


def test_pack_holds_every_format_and_verifies(built):
    lab, pack, _, _ = built
    names = {p.name for p in pack.iterdir()}
    # decisions/: when the ledger holds signed ones; verify-run/: the run's signed results, always
    assert PACK_FILES | {"verify-run"} <= names <= PACK_FILES | {"decisions", "verify-run"}, names
    checked = lab.cli("report", "verify", str(pack))
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert "origin not proven: the key was not pinned" in " ".join(checked.stderr.split())
    pinned = lab.cli("report", "verify", str(pack), "--key", str(lab.state.signing_dir / "evidence_ed25519.pub"))
    assert pinned.rc == 0 and "signed by the pinned key" in pinned.stdout, pinned.stdout + pinned.stderr
    for command in verify_md_commands(pack):  # the auditor's own check, with stock tools only
        result = run_in(pack, command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    oscal = json.loads((pack / "oscal-assessment-results.json").read_text())["assessment-results"]
    assert oscal["metadata"]["oscal-version"].startswith("1.1")
    assert oscal["results"][0]["findings"] and oscal["results"][0]["observations"]


def test_diagram_from_live_state_shows_the_undeclared_container(built):
    _, pack, summary, _ = built
    assert any(INTRUDER in d and "not in the site file" in d for d in summary["differences"]), summary["differences"]
    svg = html.unescape((pack / "network.svg").read_text())
    assert INTRUDER in svg and INTRUDER_ADDRESS in svg and "NOT IN SITE FILE" in svg
    for env, vlan in (("dev", 10), ("test", 20), ("prod", 30)):
        assert f"VLAN {vlan}" in svg and f"10.91.{vlan}.0/24" in svg, env
    report = json.loads((pack / "report.json").read_text())
    net4 = next(c for c in report["controls"] if c["id"] == "NET-4")
    assert net4["status"] == "fail" and INTRUDER in net4["results"][0]["observed"]
    assert summary["failing"] == ["NET-4"], "only the deliberate difference fails"


def test_the_pack_carries_the_signed_results_of_the_verify_run_it_names(built):
    lab, pack, summary, _ = built
    run = summary["verify_results"]
    assert run["run"] == summary["verify_run"] and run["namespace"] == "provision-results"
    kept = lab.state.runs_dir / run["run"]
    for name in ("results.json", "results.json.sig"):
        assert (pack / "verify-run" / run["run"] / name).read_bytes() == (kept / name).read_bytes(), name
    assert run["digest"] == "sha256:" + hashlib.sha256((kept / "results.json").read_bytes()).hexdigest()
    report = json.loads((pack / "report.json").read_text())
    assert report["verify_results"] == run and report["history"][-1]["results_digest"] == run["digest"]


def test_report_refuses_the_lab_run_once_its_results_are_edited(built, tmp_path):
    lab, _, summary, _ = built
    results = lab.state.runs_dir / summary["verify_run"] / "results.json"
    original = results.read_bytes()
    try:
        results.write_bytes(original.replace(b'"pass"', b'"Pass"', 1))  # one byte: still JSON, not what was signed
        assert results.read_bytes() != original
        refused = lab.cli("report", str(lab.site_file), "--out", str(tmp_path / "pack"))
        assert refused.rc == 1, refused.stdout + refused.stderr
        assert f"verify run {summary['verify_run']} (" in refused.stderr
        assert "signature does not match (file changed after verify)" in " ".join(refused.stderr.split())
        assert not (tmp_path / "pack").exists()
    finally:
        results.write_bytes(original)


def test_verify_run_is_kept_in_the_history_and_plotted(built):
    lab, pack, _, _ = built
    report = json.loads((pack / "report.json").read_text())
    assert report["history"] and report["history"][-1]["run"] == report["verify_run"]
    assert report["history"][-1]["counts"]["fail"] == 0 and report["history"][-1]["counts"]["pass"] > 0
    assert (lab.state.evidence_dir / "verify-chain.jsonl").is_file()
    assert 'class="trend-pass"' in (pack / "report.html").read_text()


def test_access_matrix_is_read_from_the_hosts(built):
    _, pack, _, _ = built
    access = json.loads((pack / "report.json").read_text())["access"]
    levels = access["levels"]
    assert levels["alice"] == {"dev": "sudo", "test": "login", "prod": "none"}
    assert levels["carol"] == {"dev": "none", "test": "login", "prod": "none"}
    assert levels["dave"] == {"dev": "sudo", "test": "sudo", "prod": "sudo"}
    assert levels["deploy"]["prod"] == "deploy"
    assert access["hypervisor"] is None and not access["unreadable"]
    prod_db = {a["user"]: a for a in access["hosts"]["prod-db1"]}
    assert "alice" not in prod_db or prod_db["alice"]["level"] == "none"


def test_html_in_chromium_answers_the_three_questions_and_lists_every_control(built):
    _, pack, _, artifacts = built
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    url = (pack / "report.html").as_uri()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--user-data-dir=" + str(artifacts.parent / "chromium-profile"),
    ]
    shot = artifacts / "report.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1280,4000", url],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 10_000, "the screenshot is kept next to the pack"
    # pytest keeps only its last few temporary folders and other suites run here too: keep a copy to look at
    kept = ROOT / "test-artifacts" / "report-lab"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(pack, kept / "pack")
    shutil.copy2(shot, kept / "report.png")
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for qid, question, _ in QUESTIONS:
        assert f'id="{qid.lower()}"' in dom and question in dom, qid
    for cid in CONTROLS:
        assert f'id="control-{cid}"' in dom, cid
    assert "not checked" in dom, "Q2 without DATA-* results says so"
    assert 'id="policy"' in dom and "Secure Development Policy" in dom


def test_pdf_has_the_same_sections(built):
    _, pack, _, _ = built
    text = subprocess.run(
        ["pdftotext", "-layout", str(pack / "report.pdf"), "-"], capture_output=True, text=True
    ).stdout
    flat = " ".join(text.split())
    for heading in ("The auditor's three questions", "Controls", "Network diagram", "Reachability matrix",
                    "Access matrix", "Release history", "Waivers", "Secure Development Policy"):  # fmt: skip
        assert heading in flat, heading
    for qid, _, _ in QUESTIONS:
        assert f"{qid}." in flat
    for cid in CONTROLS:
        assert cid in flat, cid


def test_no_secret_in_any_file_of_the_pack(built):
    lab, pack, _, _ = built
    secrets = [s for s in lab.state.secret_values() if len(s) >= 8]
    assert secrets, "the lab holds secrets (controller key, database passwords, evidence key)"
    texts = {p.name: p.read_bytes().decode(errors="replace") for p in pack.rglob("*") if p.is_file()}
    texts["report.pdf (text)"] = subprocess.run(
        ["pdftotext", str(pack / "report.pdf"), "-"], capture_output=True, text=True
    ).stdout
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {name}"
