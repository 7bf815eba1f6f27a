"""A per-site nftables table on the controller: the lab never routes to the outside, and nothing on an
environment's segment talks to the controller itself.

The controller has no address on a segment's bridge, but Linux answers ARP for any of its addresses on any
interface: a host on a segment could send straight to the controller's management address through its own bridge,
past the gateway. The input chain drops whatever reaches the controller through a segment's bridge.
"""

from __future__ import annotations

from collections.abc import Sequence

from provisioner.controller.shell import run


def table_name(site: str) -> str:
    return f"provisioner_{site}"


def install(site: str, mgmt_bridge: str, segment_bridges: Sequence[str] = ()) -> None:
    run(["nft", "-f", "-"], input_text=ruleset(site, mgmt_bridge, segment_bridges))


def ruleset(site: str, mgmt_bridge: str, segment_bridges: Sequence[str] = ()) -> str:
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
  }}{_input_chain(segment_bridges)}
}}
"""


def _input_chain(segment_bridges: Sequence[str]) -> str:
    if not segment_bridges:
        return ""
    names = ", ".join(f'"{b}"' for b in sorted(segment_bridges))
    return f"""
  counter from_segments {{
    comment "packets a segment sent to the controller itself"
  }}
  chain input {{
    type filter hook input priority filter - 5; policy accept;
    iifname {{ {names} }} counter name "from_segments" drop comment "nothing on a segment talks to the controller"
  }}"""


def guards_input(site: str) -> bool:
    """Whether the site's table has its input chain (the segments' way to the controller closed)."""
    return run(["nft", "list", "chain", "inet", table_name(site), "input"], check=False).returncode == 0


def present(site: str) -> bool:
    return run(["nft", "list", "table", "inet", table_name(site)], check=False).returncode == 0


def remove(site: str) -> None:
    run(["nft", "delete", "table", "inet", table_name(site)], check=False)
