"""The report as NIST OSCAL 1.1 assessment results (JSON), for GRC tools.

One result for the pack; one observation per check result (method TEST, with its evidence), one finding per
control whose target is the control's objective, satisfied or not, referring to its observations. A control whose
failure a waiver accepts is not satisfied: its status says "accepted risk (waiver W, approved by A, expires D)" and
its finding refers to a risk with status deviation-approved, one per waiver. The auditor's questions are props of
the result, with the same verdict as the HTML.
"""

from __future__ import annotations

import uuid
from typing import Any

from provisioner.conformance.titles import check_title
from provisioner.conformance.waivers import accepted_risk_words

OSCAL_VERSION = "1.1.2"
NAMESPACE = uuid.UUID("9c1f3c64-2f6e-4e55-9a54-6b0e1a8f3d10")


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


NS = "https://provisioner.invalid/ns"


def _state(status: str) -> str:
    return "not-satisfied" if status in ("fail", "waived") else "satisfied"


def _target_status(control: dict[str, Any]) -> dict[str, str]:
    status = {"state": _state(control["status"])}
    if control.get("accepted_risk"):
        status.update(reason="other", remarks=control["accepted_risk"])
    return status


def _risks(report: dict[str, Any], key: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """One risk per waiver that waived a result, by waiver id: the deviation its approver accepted."""
    risks = {}
    for waiver in report.get("waivers", []):
        if not waiver.get("waived_results"):
            continue
        accepted = accepted_risk_words([waiver])
        risks[waiver["id"]] = {
            "uuid": _uuid(*key, "risk", waiver["id"]),
            "title": f"{waiver['control']}: {accepted}",
            "description": f"{waiver['justification']} (scope: {waiver.get('scope') or 'the whole control'})",
            "statement": f"{accepted}; risk {waiver['risk']}; compensating controls: "
            f"{'; '.join(waiver.get('compensating') or []) or 'none recorded'}; waived: "
            f"{'; '.join(waiver['waived_results'])}",
            "props": [{"name": "waiver", "ns": NS, "value": waiver["id"]}],
            "status": "deviation-approved",
        }
    return risks


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
                    {"name": "status", "ns": NS, "value": row["status"]},
                    *(
                        [{"name": "waiver", "ns": NS, "value": w["id"]} for w in row.get("waivers") or []]
                        if row["status"] == "waived"
                        else []
                    ),
                ],
                "methods": ["TEST"],
                "collected": row.get("time") or report["generated"],
                "relevant-evidence": [{"description": (row.get("evidence") or row.get("observed") or "—")[:4000]}],
            }
        )
    findings = []
    risks = _risks(report, key)
    checked = [c for c in report["controls"] if c["status"] != "not checked"]
    for control in checked:
        verdict = control.get("accepted_risk") or control["status"]
        finding: dict[str, Any] = {
            "uuid": _uuid(*key, "finding", control["id"]),
            "title": f"{control['id']}: {control['title']}",
            "description": f"{verdict}; {', '.join(control['iso2022'])}; {control['iso2013']}",
            "target": {"type": "objective-id", "target-id": control["id"].lower(), "status": _target_status(control)},
            "related-observations": [{"observation-uuid": o} for o in obs_by_control.get(control["id"], [])],
        }
        waived_by = {
            w["id"] for r in control.get("results", []) if r["status"] == "waived" for w in r.get("waivers") or []
        }
        related = [risks[w]["uuid"] for w in sorted(waived_by) if w in risks]
        if related:
            finding["related-risks"] = [{"risk-uuid": u} for u in related]
        findings.append(finding)
    questions = [
        {"name": f"auditor-question-{q['id'].lower()}", "ns": NS, "value": q["status"], "remarks": q["answer"]}
        for q in report.get("questions", [])
    ]
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
                    **({"props": questions} if questions else {}),
                    "observations": observations,
                    "findings": findings,
                    **({"risks": list(risks.values())} if risks else {}),
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
