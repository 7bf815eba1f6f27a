"""The period's timeline strips as one SVG picture: a row per control, pass / fail / waived / not verified drawn as
coloured stretches over the period, with a time axis and a legend. Inline in the HTML, so the PDF (made from the
same HTML by weasyprint) carries it too, like the network diagram and the trend."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from provisioner.report.period import FAIL, NOT_VERIFIED, PASS, TIMELINE_STATUSES, WAIVED

COLOURS = {PASS: "#2e7d32", FAIL: "#c62828", WAIVED: "#ef6c00", NOT_VERIFIED: "#d0d0d0"}
LABEL_W, ROW_H, BAR_H, TOP, MIN_FAIL_W = 70, 18, 12, 18, 2.0


def css_class(status: str) -> str:
    return "seg-" + status.replace(" ", "-")


def _x(moment: str, start: dt.datetime, seconds: float, width: float) -> float:
    offset = (dt.datetime.fromisoformat(moment) - start).total_seconds()
    return LABEL_W + max(0.0, min(1.0, offset / seconds)) * width


def _ticks(start: dt.datetime, end: dt.datetime, count: int = 5) -> list[tuple[float, str]]:
    seconds = (end - start).total_seconds()
    day = seconds >= 3 * 86400
    out = []
    for i in range(count + 1):
        moment = start + dt.timedelta(seconds=seconds * i / count)
        out.append((i / count, moment.strftime("%Y-%m-%d" if day else "%m-%d %H:%M:%S")))
    return out


def render(period: dict[str, Any], width: int = 720) -> str:
    """`period`: the dict period.build returns."""
    start, end = dt.datetime.fromisoformat(period["from"]), dt.datetime.fromisoformat(period["to"])
    seconds = max(1.0, (end - start).total_seconds())
    controls = period["controls"]
    strip_w = width - LABEL_W - 10
    height = TOP + len(controls) * ROW_H + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="timeline" role="img" '
        f'aria-label="status of each control from {escape(period["from"])} to {escape(period["to"])}">',
        f'<text x="{LABEL_W}" y="12" font-size="9">{escape(period["from"])}</text>',
        f'<text x="{width - 10}" y="12" font-size="9" text-anchor="end">{escape(period["to"])}</text>',
    ]
    for row, control in enumerate(controls):
        y = TOP + row * ROW_H
        parts.append(f'<text x="2" y="{y + BAR_H - 2}" font-size="10">{escape(control["id"])}</text>')
        segments = control["segments"]
        # failures last and never thinner than MIN_FAIL_W: a short failure in a long period stays visible
        for seg in sorted(segments, key=lambda s: s["status"] == FAIL):
            x1 = _x(seg["start"], start, seconds, strip_w)
            x2 = _x(seg["end"], start, seconds, strip_w)
            w = max(x2 - x1, MIN_FAIL_W if seg["status"] == FAIL else 0.0)
            if w <= 0:
                continue
            title = f"{control['id']} {seg['status']} {seg['start']} to {seg['end']}" + (
                f" (run {seg['run']})" if seg["run"] else ""
            )
            parts.append(
                f'<rect class="{css_class(seg["status"])}" data-control="{escape(control["id"])}" x="{x1:.2f}" '
                f'y="{y}" width="{w:.2f}" height="{BAR_H}" fill="{COLOURS[seg["status"]]}">'
                f"<title>{escape(title)}</title></rect>"
            )
    axis_y = TOP + len(controls) * ROW_H + 2
    parts.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + strip_w}" y2="{axis_y}" stroke="#555"/>')
    for fraction, label in _ticks(start, end):
        x = LABEL_W + fraction * strip_w
        anchor = "start" if fraction == 0 else "end" if fraction == 1 else "middle"
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#555"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 14}" font-size="8" text-anchor="{anchor}">{escape(label)}</text>')
    legend_x, legend_y = LABEL_W, axis_y + 30
    for status in TIMELINE_STATUSES:
        parts.append(
            f'<rect x="{legend_x}" y="{legend_y - 9}" width="10" height="10" fill="{COLOURS[status]}"/>'
            f'<text x="{legend_x + 14}" y="{legend_y}" font-size="9">{status}</text>'
        )
        legend_x += 110
    parts.append("</svg>")
    return "".join(parts)
