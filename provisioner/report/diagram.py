"""The network diagram (NET-4), drawn from live state and compared with the site file.

Segments (access networks included) come from the backend's discovery, machines from what is live on the segments
(a machine without the site's labels included), flows from the reachability matrix the verify run observed. Every
difference from the site file is drawn in red and listed.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from provisioner.backends.base import Attachment
from provisioner.errors import ProvisionError
from provisioner.planning.desired import MGMT
from provisioner.site.model import Site

OPEN_OUTCOMES = ("connected", "refused", "open")


@dataclass
class Diagram:
    dot: str
    svg: str
    differences: list[str] = field(default_factory=list)


def _q(text: str) -> str:
    """A DOT string: label escapes written by this module (newline, left-justify) pass through; quotes are escaped."""
    return '"' + text.replace('"', '\\"') + '"'


def differences(site: Site, live_segments: set[str], attachments: list[Attachment]) -> list[str]:
    """What live state has that the site file does not declare, and the other way round."""
    found: list[str] = []
    declared_segments = {e.name for e in site.environments} | {a.name for a in site.access_networks} | {MGMT}
    for seg in sorted(declared_segments - live_segments):
        found.append(f"segment {seg}: declared in the site file, not found live")
    hosts = {h.name: h for h in site.hosts}
    seen: set[str] = set()
    for att in attachments:
        if att.machine == "gateway" and att.managed:
            continue
        host = hosts.get(att.machine) if att.managed else None
        if host is None:
            where = f"on segment {att.segment}" + (f" at {att.address}" if att.address else "")
            found.append(f"{att.machine} {where}: live but not in the site file")
            continue
        seen.add(host.name)
        if att.segment != host.environment:
            found.append(f"{host.name}: live on segment {att.segment}, declared in {host.environment}")
        if att.address and att.address != str(host.address):
            found.append(f"{host.name}: live address {att.address}, declared {host.address}")
    for name in sorted(set(hosts) - seen):
        found.append(f"{name}: declared in the site file, not running live")
    return found


def flow_summary(matrix: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(source env, destination env) -> open ports observed, whether anything differed from expected."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for row in matrix:
        key = (str(row.get("source_env")), str(row.get("destination_env")))
        entry = pairs.setdefault(key, {"open": set(), "probes": 0, "mismatch": 0})
        entry["probes"] += 1
        if str(row.get("observed")) in OPEN_OUTCOMES:
            entry["open"].add(str(row.get("port")))
        if row.get("ok") is False:
            entry["mismatch"] += 1
    return pairs


def to_dot(
    site: Site,
    live_segments: set[str],
    attachments: list[Attachment],
    matrix: list[dict[str, Any]],
    diffs: list[str],
) -> str:
    hosts = {h.name: h for h in site.hosts}
    lines = [
        f"digraph {_q(site.site)} {{",
        "  graph [rankdir=LR, fontname=Helvetica, fontsize=11, labelloc=t, "
        f"label={_q(f'site {site.site}: live network (NET-4); red = differs from the site file')}];",
        "  node [fontname=Helvetica, fontsize=10, shape=box, style=rounded];",
        "  edge [fontname=Helvetica, fontsize=9];",
        '  gateway [label="environment gateway\\n(default deny)", shape=hexagon, style=filled, fillcolor="#e0e0e0"];',
    ]
    segments: list[tuple[str, int | None, str, str]] = [
        (e.name, e.segment.vlan, str(e.segment.cidr), e.tier) for e in site.environments
    ]
    segments += [(a.name, a.vlan, str(a.cidr), "access network") for a in site.access_networks]
    segments.append((MGMT, site.management.vlan, str(site.management.cidr), "management"))
    for name, vlan, cidr, tier in segments:
        live = name in live_segments
        colour = "black" if live else "red"
        label = f"{name} ({tier})\\nVLAN {vlan or '-'}  {cidr}" + ("" if live else "\\nNOT FOUND LIVE")
        lines += [
            f"  subgraph {_q('cluster_' + name)} {{",
            f"    label={_q(name)}; color={colour}; style={'solid' if live else 'dashed'};",
            f"    {_q('seg_' + name)} [label={_q(label)}, shape=note, color={colour}];",
        ]
        for att in attachments:
            if att.segment != name or (att.managed and att.machine == "gateway"):
                continue
            host = hosts.get(att.machine) if att.managed else None
            bad = host is None or host.environment != name or (att.address and att.address != str(host.address))
            note = "\\nNOT IN SITE FILE" if host is None else ""
            node = _q(f"{name}:{att.machine}")
            label = _q(f"{att.machine}\\n{att.address or 'no address'}{note}")
            style = ", color=red, fontcolor=red, penwidth=2" if bad else ""
            lines.append(f"    {node} [label={label}{style}];")
            lines.append(f"    {_q('seg_' + name)} -> {node} [arrowhead=none, color=gray];")
        for host in site.hosts_in(name) if name != MGMT else []:
            if not any(a.managed and a.machine == host.name for a in attachments):
                node = _q(f"{name}:{host.name}:missing")
                lines.append(
                    f"    {node} [label={_q(f'{host.name}' + chr(92) + 'n' + 'declared, not running')}, "
                    "color=red, fontcolor=red, style=dashed];"
                )
        lines.append("  }")
        leg = next((a.address for a in attachments if a.managed and a.machine == "gateway" and a.segment == name), None)
        leg_label = f", label={_q(leg)}" if leg else ', label="no live leg", color=red, fontcolor=red'
        lines.append(f"  gateway -> {_q('seg_' + name)} [arrowhead=none, penwidth=2{leg_label}];")
    summary = flow_summary(matrix)
    for src, dst in sorted({tuple(sorted(pair)) for pair in summary if pair[0] != pair[1]}):
        texts, allowed, mismatch = [], False, 0
        for a, b in ((src, dst), (dst, src)):
            entry = summary.get((a, b))
            if entry is None:
                continue
            allowed = allowed or bool(entry["open"])
            mismatch += entry["mismatch"]
            verdict = "allowed " + ", ".join(sorted(entry["open"])) if entry["open"] else "denied"
            texts.append(f"{a} → {b}: {verdict} ({entry['probes']} probes)")
        style = "color=darkgreen, fontcolor=darkgreen" if allowed else "color=red, fontcolor=red, style=dashed"
        if mismatch:
            texts.append(f"{mismatch} differ from the site file")
            style = "color=red, fontcolor=red, penwidth=3"
        label = "\\n".join(texts)
        lines.append(
            f"  {_q('seg_' + src)} -> {_q('seg_' + dst)} [label={_q(label)}, {style}, dir=none, constraint=false];"
        )
    if diffs:
        text = "\\l".join(html.escape(d, quote=False) for d in diffs) + "\\l"
        lines.append(
            f"  differences [shape=box, color=red, fontcolor=red, label={_q('differences:' + chr(92) + 'l' + text)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise ProvisionError("the network diagram needs graphviz (`dot`): run `make setup`")
    result = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ProvisionError(f"graphviz could not draw the network diagram: {result.stderr.strip()}")
    svg = result.stdout
    return svg[svg.find("<svg") :] if "<svg" in svg else svg


def build_diagram(
    site: Site, live_segments: set[str], attachments: list[Attachment], matrix: list[dict[str, Any]]
) -> Diagram:
    diffs = differences(site, live_segments, attachments)
    dot_source = to_dot(site, live_segments, attachments, matrix, diffs)
    return Diagram(dot_source, render_svg(dot_source), diffs)
