"""The report's results as JUnit XML: one test case per check and subject, grouped by control."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from provisioner.conformance.waivers import accepted_risk


def render_junit(report: dict[str, Any]) -> str:
    suites = ET.Element("testsuites", name=f"provisioner evidence pack {report['site']}")
    by_control: dict[str, list[dict[str, Any]]] = {}
    for row in report["results"]:
        by_control.setdefault(row["control"], []).append(row)
    for control in report["controls"]:
        rows = by_control.get(control["id"], [])
        if not rows:
            continue
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=control["id"],
            tests=str(len(rows)),
            failures=str(sum(r["status"] == "fail" for r in rows)),
            skipped=str(sum(r["status"] == "skip" for r in rows)),
            errors="0",
            timestamp=report["generated"],
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="title", value=control["title"])
        ET.SubElement(props, "property", name="iso2022", value=", ".join(control["iso2022"]))
        ET.SubElement(props, "property", name="iso2013", value=control["iso2013"])
        for row in rows:
            case = ET.SubElement(suite, "testcase", classname=control["id"], name=f"{row['check']}[{row['host']}]")
            text = (
                f"expected: {row.get('expected', '')}\nobserved: {row.get('observed', '')}\n{row.get('evidence', '')}"
            )
            if row["status"] == "fail":
                ET.SubElement(case, "failure", message=str(row.get("observed", ""))[:500]).text = text
            elif row["status"] == "skip":
                ET.SubElement(case, "skipped", message=str(row.get("evidence", ""))[:500])
            else:
                if row["status"] == "waived":
                    text = f"WAIVED, {accepted_risk([row])}: the check failed; a waiver accepts the failure\n{text}"
                ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
