"""The gateway's deny counters between two verify runs: this run's start minus the previous run's end.

The counters only grow while the ruleset stays loaded; one lower than before means the ruleset was reloaded or the
gateway rebuilt, and then what it holds now is counted from zero (what was counted between the previous run and
the reload is lost, and the note says so). A counter the previous run did not see is counted from zero too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from provisioner.conformance.reachability import deny_counter
from provisioner.site.model import Site


def pair_names(site: Site) -> dict[str, str]:
    """Counter name -> '<from>-><to>' for every pair of zones the gateway counts (roles/env_gateway)."""
    zones = ["mgmt", *(e.name for e in site.environments), *(a.name for a in site.access_networks)]
    return {deny_counter(a, b): f"{a}->{b}" for a in zones for b in zones if a != b}


@dataclass
class Between:
    by_pair: dict[str, int] = field(default_factory=dict)  # '<from>-><to>': packets, only those above zero
    other: dict[str, int] = field(default_factory=dict)  # other counters (gateway input, spoofed legs, unknown)
    notes: list[str] = field(default_factory=list)


def between(previous: Mapping[str, int], now: Mapping[str, int], pairs: Mapping[str, str]) -> Between:
    """Packets each counter counted from `previous` (the previous run's end) to `now` (this run's start)."""
    found = Between()
    for name in sorted(now):
        value, before = now[name], previous.get(name)
        if before is None:
            counted = value
            if value:
                found.notes.append(f"{name} is new since the previous run: counted from zero")
        elif value < before:
            counted = value
            found.notes.append(
                f"{name} went down from {before} to {value} (ruleset reloaded or gateway rebuilt): counted from "
                "zero, what it counted before the reload is lost"
            )
        else:
            counted = value - before
        if counted <= 0:
            continue
        if name in pairs:
            found.by_pair[pairs[name]] = counted
        else:
            found.other[name] = counted
    return found
