"""Shared by the report's unit tests: the example site, a recorded verify run, a pack built from them."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

from helpers import EXAMPLE

from provisioner.backends.base import Attachment
from provisioner.report import access_matrix, collect, releases
from provisioner.site.load import load_site
from provisioner.site.model import Site

RESULTS = Path(__file__).resolve().parents[1] / "data" / "report" / "results.json"
TODAY = dt.date(2026, 11, 24)


def example_site(**changes: Any) -> Site:
    return load_site(EXAMPLE).model.model_copy(update=changes)


def recorded_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


def live_as_declared(site: Site) -> list[Attachment]:
    legs = [Attachment(e.name, "gateway", str(e.segment.gateway), True) for e in site.environments]
    legs.append(Attachment("mgmt", "gateway", str(site.management.gateway), True))
    return [Attachment(h.environment, h.name, str(h.address), True) for h in site.hosts] + legs


def build_report(
    site: Site | None = None,
    payload: dict[str, Any] | None = None,
    attachments: list[Attachment] | None = None,
    evidence_dir: Path | None = None,
    history: list[dict[str, Any]] | None = None,
    unreadable: dict[str, str] | None = None,
) -> dict[str, Any]:
    site = site or example_site()
    payload = copy.deepcopy(payload or recorded_results())
    segments = {e.name for e in site.environments} | {"mgmt"}
    matrix = access_matrix.build_matrix(site, {}, unreadable or {}, None)
    ledger = releases.read_ledger(evidence_dir or Path("/nonexistent"))
    return collect.assemble(
        site, Path("20261124T060000Z-verify-abc123"), payload, segments,
        live_as_declared(site) if attachments is None else attachments, matrix, ledger, history or [], today=TODAY,
    )  # fmt: skip
