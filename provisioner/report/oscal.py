"""The report as NIST OSCAL 1.1 assessment results (JSON), for GRC tools.

One result for the pack; one observation per check result (method TEST, with its evidence), one finding per
control whose target is the control's objective, satisfied or not, referring to its observations.
"""

from __future__ import annotations

import uuid
from typing import Any

from provisioner.conformance.titles import check_title

OSCAL_VERSION = "1.1.2"
NAMESPACE = uuid.UUID("9c1f3c64-2f6e-4e55-9a54-6b0e1a8f3d10")


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _state(status: str) -> str:
    return "not-satisfied" if status == "fail" else "satisfied"


def render_oscal(report: dict[str, Any]) -> dict[str, Any]:
    key = (report["site"], report["generated"])
    observations = []
    obs_by_control: dict[str, list[str]] = {}
    for index, row in enumerate(report["results"]):
        oid = _uuid(*key, "observation", str(index))
        obs_by_control.setdefault(row["control"], []).append(oid)
        observations.append(
            {
                "uuid": oid,
                "title": f"{row['control']}: {row.get('title') or check_title(str(row['check']))} ({row['host']})",
                "description": f"expected: {row.get('expected', '')}; observed: {row.get('observed', '')}",
                "props": [
                    {"name": "status", "ns": "https://provisioner.invalid/ns", "value": row["status"]},
                    *(
                        [{"name": "waiver", "ns": "https://provisioner.invalid/ns", "value": row["waiver"]}]
                        if row.get("waiver")
                        else []
                    ),
                ],
                "methods": ["TEST"],
                "collected": row.get("time") or report["generated"],
                "relevant-evidence": [{"description": (row.get("evidence") or row.get("observed") or "—")[:4000]}],
            }
        )
    findings = []
    checked = [c for c in report["controls"] if c["status"] != "not checked"]
    for control in checked:
        findings.append(
            {
                "uuid": _uuid(*key, "finding", control["id"]),
                "title": f"{control['id']}: {control['title']}",
                "description": f"{control['status']}; {', '.join(control['iso2022'])}; {control['iso2013']}",
                "target": {
                    "type": "objective-id",
                    "target-id": control["id"].lower(),
                    "status": {"state": _state(control["status"])},
                },
                "related-observations": [{"observation-uuid": o} for o in obs_by_control.get(control["id"], [])],
            }
        )
    return {
        "assessment-results": {
            "uuid": _uuid(*key, "assessment-results"),
            "metadata": {
                "title": f"ISO/IEC 27001:2022 A.8.31 separation of environments — site {report['site']}",
                "last-modified": report["generated"],
                "version": report["verify_run"],
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": {"href": "#provisioner-conformance-suite"},
            "results": [
                {
                    "uuid": _uuid(*key, "result"),
                    "title": f"provision verify {report['verify_run']} and live state",
                    "description": "Checks read state from the hosts and attempt what must fail; waivers applied."
                    + _signed_run(report),
                    "start": report.get("verify_finished") or report["generated"],
                    "end": report["generated"],
                    "reviewed-controls": {
                        "control-selections": [{"include-controls": [{"control-id": c["id"].lower()} for c in checked]}]
                    },
                    "observations": observations,
                    "findings": findings,
                }
            ],
        }
    }


def _signed_run(report: dict[str, Any]) -> str:
    run = report.get("verify_results")
    if not run:
        return ""
    return (
        f" Results of verify run {run['run']}: SHA-256 {run['digest']}, signed at verify time by the key "
        f"{run['signer']}."
    )
