"""Writing the evidence pack: HTML, PDF, JSON, JUnit XML, OSCAL, the diagram, the Secure Development Policy, the
signed decisions with the allowed_signers file and VERIFY.md (how to check it all with stock tools); then the
signed manifest."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

from provisioner.errors import InputError, ProvisionError
from provisioner.report import decisions, history_files, policy, run_files
from provisioner.report.junit import render_junit
from provisioner.report.manifest import MANIFEST, PUBLIC_KEY, SIGNATURE, write_manifest
from provisioner.report.oscal import render_oscal
from provisioner.report.render_html import render_html
from provisioner.report.render_pdf import render_pdf
from provisioner.workspace import signing
from provisioner.workspace.redact import Redactor
from provisioner.workspace.site_state import SiteState

HTML, PDF, JSON_FILE, JUNIT, OSCAL, SVG, DOT = (
    "report.html",
    "report.pdf",
    "report.json",
    "junit.xml",
    "oscal-assessment-results.json",
    "network.svg",
    "network.dot",
)
POLICY_MD, POLICY_PDF = "policy.md", "policy.pdf"
NOT_IN_JSON = (
    "diagram_svg",
    "policy_document",
    "verify_run_files",
    "period_svg",
)  # drawn or written as files of their own


def default_folder(state: SiteState) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return state.evidence_dir / "reports" / f"{stamp}-{uuid.uuid4().hex[:6]}"


def check_out_folder(out: str) -> Path:
    """--out: a folder that does not exist yet (it is made) or an empty one."""
    wanted = "an evidence pack is written into a new or empty folder"
    if not out.strip():
        raise InputError(f"--out '': empty; {wanted}")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder}: a file; {wanted}")
    if folder.is_dir() and any(folder.iterdir()):
        raise InputError(f"--out {folder}: not empty; {wanted}")
    return folder


def evidence_key(state: SiteState) -> dict[str, str]:
    """The site's evidence key as the report shows it, so the auditor can pin its fingerprint (made on first use)."""
    public = signing.public_key(state)
    return {"identity": signing.identity(state), "public": public, "fingerprint": signing.fingerprint(public)}


def write_pack(report: dict[str, Any], folder: Path, state: SiteState) -> Path:
    """Every file is masked for the site's secrets before it is written; the PDF is made from masked HTML. The
    signed decisions, the verify run's signed results.json (masked when verify wrote it), allowed_signers,
    VERIFY.md and, in a period pack, the verification history (history_files) are written as they are: a masked
    byte would break a signature.
    `report` gains `evidence_key` (identity, public key, fingerprint)."""
    redactor = Redactor(state.secret_values())
    signed_run = run_files.files(report)
    for name, data in signed_run.items():
        if redactor.text(data.decode(errors="replace")) != data.decode(errors="replace"):
            raise ProvisionError(
                f"{name}: the verify run's results hold a secret this controller knows now, and signed results "
                "cannot be masked; run `provision verify` again (it masks the secrets it knows)"
            )
    history = history_files.files(state) if report.get("period") is not None else {}
    for name, data in history.items():
        if redactor.text(data.decode(errors="replace")) != data.decode(errors="replace"):
            raise ProvisionError(
                f"{name}: the verification history holds a secret this controller knows now, and its signed "
                "entries cannot be masked"
            )
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InputError(f"--out {folder}: not empty; an evidence pack is written into a new or empty folder")
    report["evidence_key"] = evidence_key(state)
    html_text = redactor.text(render_html(report))
    policy_blocks = report.get("policy_document") or []
    policy_html = redactor.text(policy.to_html(policy_blocks)) if policy_blocks else ""
    texts = {
        HTML: html_text,
        JSON_FILE: redactor.text(json.dumps({k: v for k, v in report.items() if k not in NOT_IN_JSON}, indent=1)),
        JUNIT: redactor.text(render_junit(report)),
        OSCAL: redactor.text(json.dumps(render_oscal(report), indent=1)),
        SVG: redactor.text(report["diagram_svg"]),
        DOT: redactor.text(report["diagram_dot"]),
    }
    if policy_blocks:
        texts[POLICY_MD] = redactor.text(policy.to_markdown(policy_blocks))
    signed = report.get("decisions", [])
    texts[decisions.ALLOWED_SIGNERS] = decisions.allowed_signers(
        report["evidence_key"]["identity"], report["evidence_key"]["public"], report.get("signers", []), signed
    )
    history_steps = (
        history_files.verify_steps(report["evidence_key"]["identity"], decisions.ALLOWED_SIGNERS, 6)
        if history
        else None
    )
    texts[decisions.VERIFY_FILE] = decisions.verify_instructions(
        report, MANIFEST, SIGNATURE, PUBLIC_KEY, report.get("decisions_left_out", []), history_steps
    )
    for name, text in texts.items():
        (folder / name).write_text(text)
    for name, data in signed_run.items():  # the verify run's results.json and its signature, as verify signed them
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for name, data in history.items():  # the history's files as they are: a masked byte would break a signature
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for decision in signed:
        (folder / decisions.FOLDER).mkdir(exist_ok=True)
        (folder / decision["statement_file"]).write_bytes(decision["statement"].encode("utf-8"))
        (folder / decision["signature_file"]).write_text(decision["signature"].strip() + "\n")
    (folder / PDF).write_bytes(render_pdf(html_text))
    if policy_html:
        (folder / POLICY_PDF).write_bytes(render_pdf(policy_html))
    write_manifest(folder, state)
    os.chmod(folder, 0o755)
    return folder
