"""The verification history: each verify run appended to a hash-chained, signed chain in the site's evidence folder
(`evidence/verify-chain.jsonl` and its signed head `verify-chain.head.json`, namespace `provision-verify-history`;
see provisioner.workspace.hash_chain), so a deleted, reordered or edited run, a bad signature or a cut-off end is
found and named by its line.

An entry: `seq`, `time` (ISO UTC, when the run finished), `run` (its folder), `counts` per status,
`failed_controls`, `results_digest` (SHA-256 of the run's signed results.json) and `signer` (the fingerprint of the
key that signed them), `trigger` ("manual" or "watch:<schedule>"), `controls` (control ID -> pass | fail | waived |
skip for every control the run covered; a control it did not cover is absent, never "pass"), `attempts` (the
blocked attempts since the run before, when collected), then `prev`, `hash` and `sig`.

The unchained `verify-history.jsonl` earlier versions wrote is left as it is and no longer read: its lines carry no
chain or signature, so they are not evidence of a period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.waivers import control_status, summarise
from provisioner.workspace.hash_chain import ChainProblem, HashChain
from provisioner.workspace.site_state import SiteState

NAMESPACE = "provision-verify-history"
HISTORY_FILE = "verify-chain.jsonl"
HEAD_FILE = "verify-chain.head.json"
LOCK_FILE = ".verify-chain.lock"
UNCHAINED_FILE = "verify-history.jsonl"  # what earlier versions wrote: not chained, not read
STATUSES = ("pass", "fail", "skip", "waived")


class VerifyHistory(HashChain):
    what = "verification history"

    def __init__(self, state: SiteState):
        super().__init__(state, NAMESPACE, HISTORY_FILE, HEAD_FILE, LOCK_FILE)


def history_path(state: SiteState) -> Path:
    return state.evidence_dir / HISTORY_FILE


def iso(moment: dt.datetime) -> str:
    """A time as the history writes it: ISO 8601 in UTC, to the second."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def verdicts(rows: list[dict[str, Any]], covered: Collection[str] | None = None) -> dict[str, str]:
    """pass | fail | waived | skip for every control the run covered: the whole catalogue when `covered` is None (a
    full run), otherwise each control of `covered`; "skip" where the run produced no result for it (it proved
    nothing: not verified). Controls outside `covered` are left out even if rows name them: the run was not meant
    to vouch for them."""
    counts = summarise(rows)
    if covered is None:
        covered = list(CONTROLS)
    return {cid: control_status(counts[cid]) if cid in counts else "skip" for cid in sorted(set(covered))}


def record_run(
    state: SiteState,
    run_dir: Path,
    rows: list[dict[str, Any]],
    results_digest: str = "",
    signer: str = "",
    *,
    trigger: str = "manual",
    covered: Collection[str] | None = None,
    attempts: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Append one signed, chained entry for a finished verify run and return it (with seq, prev, hash, sig).
    `now`: when the run finished (default: now)."""
    entry: dict[str, Any] = {
        "time": iso(now or dt.datetime.now(dt.UTC)),
        "run": run_dir.name,
        "counts": {status: sum(1 for r in rows if r["status"] == status) for status in STATUSES},
        "failed_controls": sorted({r["control"] for r in rows if r["status"] == "fail"}),
        "results_digest": results_digest,
        "signer": signer,
        "trigger": trigger,
        "controls": verdicts(rows, covered),
    }
    if attempts is not None:
        entry["attempts"] = attempts
    chain = VerifyHistory(state)
    with chain.locked():
        return chain.append(entry)


def read_history(state: SiteState) -> list[dict[str, Any]]:
    """Every recorded run as written, oldest first (lines that are no JSON object, or carry no counts, are left
    out: `check_history` names them)."""
    return [e for _, e in VerifyHistory(state).numbered_entries() if isinstance(e.get("counts"), dict)]


def check_history(state: SiteState) -> list[ChainProblem]:
    """Every way the history differs from what verify appended, each naming its line and what is wrong: an entry
    deleted, reordered or edited, a signature that does not verify, entries cut off the end. Empty: it holds."""
    return VerifyHistory(state).problems()


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
