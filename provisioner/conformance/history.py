"""The trend of conformance: each verify run's counts, appended to the site's evidence folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.waivers import control_status, summarise
from provisioner.workspace.site_state import SiteState

HISTORY_FILE = "verify-history.jsonl"
STATUSES = ("pass", "fail", "skip", "waived")


def history_path(state: SiteState) -> Path:
    return state.evidence_dir / HISTORY_FILE


def covered_verdicts(rows: list[dict[str, Any]], covered: list[str] | None = None) -> dict[str, str]:
    """pass | fail | waived | skip for every control a run covered (None: the whole catalogue); a covered control
    without any result is 'skip' (not verified), and a control the run did not cover is absent, never 'pass'."""
    counts = summarise(rows)
    ids = list(CONTROLS) if covered is None else covered
    return {cid: control_status(counts.get(cid, {})) for cid in ids}


def record_run(
    state: SiteState,
    run_dir: Path,
    rows: list[dict[str, Any]],
    results_digest: str = "",
    signer: str = "",
    *,
    trigger: str = "manual",
    covered: list[str] | None = None,
    attempts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one line: time, run folder, counts per status, failed controls; the SHA-256 of the run's signed
    results.json and the fingerprint of the key that signed it; what started the run (manual, watch:<schedule>)
    and the verdict of each control it covered (covered None: every control of the catalogue)."""
    counts = {status: sum(1 for r in rows if r["status"] == status) for status in STATUSES}
    entry: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": run_dir.name,
        "counts": counts,
        "failed_controls": sorted({r["control"] for r in rows if r["status"] == "fail"}),
        "trigger": trigger,
        "controls": covered_verdicts(rows, covered),
    }
    if results_digest:
        entry["results_digest"] = results_digest
        entry["signer"] = signer
    if attempts is not None:
        entry["attempts"] = attempts  # the blocked attempts since the previous run (conformance.attempts)
    state.evidence_dir.mkdir(parents=True, exist_ok=True)
    with history_path(state).open("a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def read_history(state: SiteState) -> list[dict[str, Any]]:
    """Every recorded run, oldest first; lines that do not parse are skipped."""
    path = history_path(state)
    entries = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("counts"), dict):
            entries.append(entry)
    return entries


COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "waived": "#ef6c00", "skip": "#9e9e9e"}


def trend_svg(entries: list[dict[str, Any]], width: int = 480, height: int = 140, last: int = 30) -> str:
    """A small line chart (one line per status) of the last runs, as inline SVG text."""
    entries = entries[-last:]
    if not entries:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" class="trend">'
            '<text x="4" y="24" font-size="12">no verify runs recorded yet</text></svg>'
        )
    pad_left, pad_bottom, pad_top = 30, 18, 8
    plot_w, plot_h = width - pad_left - 10, height - pad_bottom - pad_top
    top = max(1, max(int(e["counts"].get(s, 0)) for e in entries for s in STATUSES))
    step = plot_w / max(1, len(entries) - 1)

    def point(index: int, value: int) -> str:
        x = pad_left + index * step
        y = pad_top + plot_h - (value / top) * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="trend" '
        f'role="img" aria-label="verify results over the last {len(entries)} runs">',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 10}" y2="{pad_top + plot_h}" stroke="#555"/>',
        f'<line x1="{pad_left}" y1="{pad_top}" x2="{pad_left}" y2="{pad_top + plot_h}" stroke="#555"/>',
        f'<text x="2" y="{pad_top + 10}" font-size="10">{top}</text>',
        f'<text x="2" y="{pad_top + plot_h}" font-size="10">0</text>',
    ]
    for status in STATUSES:
        values = [int(e["counts"].get(status, 0)) for e in entries]
        if not any(values):
            continue
        points = " ".join(point(i, v) for i, v in enumerate(values))
        parts.append(
            f'<polyline class="trend-{status}" fill="none" stroke="{COLOURS[status]}" stroke-width="2" '
            f'points="{points}"/>'
        )
        for i, v in enumerate(values):
            x, y = point(i, v).split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{COLOURS[status]}"/>')
    legend_x = pad_left
    for status in STATUSES:
        parts.append(f'<text x="{legend_x}" y="{height - 4}" font-size="10" fill="{COLOURS[status]}">{status}</text>')
        legend_x += 60
    parts.append("</svg>")
    return "".join(parts)
