"""Writing the evidence pack: HTML, PDF, JSON, JUnit XML, OSCAL, the diagram; then the signed manifest."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

from provisioner.errors import InputError
from provisioner.report.junit import render_junit
from provisioner.report.manifest import write_manifest
from provisioner.report.oscal import render_oscal
from provisioner.report.render_html import render_html
from provisioner.report.render_pdf import render_pdf
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


def write_pack(report: dict[str, Any], folder: Path, state: SiteState) -> Path:
    """Every file is masked for the site's secrets before it is written; the PDF is made from masked HTML."""
    redactor = Redactor(state.secret_values())
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InputError(f"--out {folder}: not empty; an evidence pack is written into a new or empty folder")
    html_text = redactor.text(render_html(report))
    texts = {
        HTML: html_text,
        JSON_FILE: redactor.text(json.dumps({k: v for k, v in report.items() if k != "diagram_svg"}, indent=1)),
        JUNIT: redactor.text(render_junit(report)),
        OSCAL: redactor.text(json.dumps(render_oscal(report), indent=1)),
        SVG: redactor.text(report["diagram_svg"]),
        DOT: redactor.text(report["diagram_dot"]),
    }
    for name, text in texts.items():
        (folder / name).write_text(text)
    (folder / PDF).write_bytes(render_pdf(html_text))
    write_manifest(folder, state)
    os.chmod(folder, 0o755)
    return folder
