"""A per-site nftables table on the controller: the lab never routes to the outside, and nothing on an
environment's segment talks to the controller itself.

The controller has no address on a segment's bridge, but Linux answers ARP for any of its addresses on any
interface: a host on a segment could send straight to the controller's management address through its own bridge,
past the gateway. The input chain drops whatever reaches the controller through a segment's bridge.

The controller's log receiver (LOG-1) listens on its management address: through the management device, only the
shipping segments' addresses may open a connection to its port (the gateway lets nothing else through either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provisioner.controller.shell import run


def table_name(site: str) -> str:
    return f"provisioner_{site}"


@dataclass(frozen=True)
class ReceiverGuard:
    """Who may open a connection to the controller's log receiver: these source prefixes, to this port."""

    port: int
    sources: tuple[str, ...]


def install(
    site: str, mgmt_bridge: str, segment_bridges: Sequence[str] = (), receiver: ReceiverGuard | None = None
) -> None:
    run(["nft", "-f", "-"], input_text=ruleset(site, mgmt_bridge, segment_bridges, receiver))


def ruleset(
    site: str, mgmt_bridge: str, segment_bridges: Sequence[str] = (), receiver: ReceiverGuard | None = None
) -> str:
    name = table_name(site)
    return f"""
table inet {name}
delete table inet {name}
table inet {name} {{
  comment "provisioner site {site}: nothing from the lab is routed beyond its management bridge"
  chain forward {{
    type filter hook forward priority filter - 5; policy accept;
    iifname "{mgmt_bridge}" oifname != "{mgmt_bridge}" counter drop
    oifname "{mgmt_bridge}" iifname != "{mgmt_bridge}" counter drop
  }}{_input_chain(mgmt_bridge, segment_bridges, receiver)}
}}
"""


def _input_chain(mgmt_bridge: str, segment_bridges: Sequence[str], receiver: ReceiverGuard | None) -> str:
    if not segment_bridges and receiver is None:
        return ""
    counters, rules = [], []
    if segment_bridges:
        names = ", ".join(f'"{b}"' for b in sorted(segment_bridges))
        counters.append('counter from_segments {\n    comment "packets a segment sent to the controller itself"\n  }')
        rules.append(
            f'iifname {{ {names} }} counter name "from_segments" drop comment "nothing on a segment talks to the '
            'controller"'
        )
    if receiver is not None:
        counters.append(
            'counter receiver_refused {\n    comment "connections to the log receiver from outside the shipping '
            'segments"\n  }'
        )
        allowed = f"ip saddr != {{ {', '.join(receiver.sources)} }} " if receiver.sources else ""
        rules.append(
            f'iifname "{mgmt_bridge}" tcp dport {receiver.port} {allowed}ct state new counter name "receiver_refused" '
            'drop comment "only the shipping segments reach the log receiver"'
        )
    body = "\n    ".join(rules)
    return f"""
  {chr(10).join("  " + c if i else c for i, c in enumerate(counters))}
  chain input {{
    type filter hook input priority filter - 5; policy accept;
    {body}
  }}"""


def guards_input(site: str) -> bool:
    """Whether the site's table has its input chain (the segments' way to the controller closed)."""
    return run(["nft", "list", "chain", "inet", table_name(site), "input"], check=False).returncode == 0


def guards_receiver(site: str) -> bool:
    """Whether the site's input chain limits who reaches the log receiver."""
    listed = run(["nft", "list", "chain", "inet", table_name(site), "input"], check=False)
    return listed.returncode == 0 and 'counter name "receiver_refused" drop' in listed.stdout


def present(site: str) -> bool:
    return run(["nft", "list", "table", "inet", table_name(site)], check=False).returncode == 0


def remove(site: str) -> None:
    run(["nft", "delete", "table", "inet", table_name(site)], check=False)
