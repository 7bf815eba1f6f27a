"""Attempts the suite could not make (a developer's private key was not given, …): verify fails for each one,
unless the site file declares the control out of scope, with a reason and who decided it. Either way the row says
so, and nothing not attempted is reported as proven."""

from __future__ import annotations

from typing import Any

from provisioner.site.model import Site

NOT_ATTEMPTED = "not attempted: "  # the start of a check's skip reason when an attempt could not be made


def is_not_attempted(row: dict[str, Any]) -> bool:
    return row.get("status") == "skip" and NOT_ATTEMPTED in str(row.get("evidence", ""))


def mark(rows: list[dict[str, Any]], site: Site) -> list[dict[str, Any]]:
    """Rows with every unattempted one labelled: `out_of_scope` (the site's declaration) or `not_attempted`."""
    declared = {entry.control: entry for entry in site.out_of_scope}
    out = []
    for original in rows:
        row = dict(original)
        row.pop("out_of_scope", None)
        row.pop("not_attempted", None)
        if is_not_attempted(row):
            entry = declared.get(str(row["control"]))
            if entry is not None:
                row["out_of_scope"] = {"reason": entry.reason, "decided_by": entry.decided_by}
            else:
                row["not_attempted"] = True
        out.append(row)
    return out


def unattempted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows verify fails for: not attempted, and not declared out of scope."""
    return [row for row in rows if row.get("not_attempted")]
