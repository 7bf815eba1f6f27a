"""A per-site nftables table on the controller: the lab never routes to the outside."""

from __future__ import annotations

from provisioner.controller.shell import run


def table_name(site: str) -> str:
    return f"provisioner_{site}"


def install(site: str, mgmt_bridge: str) -> None:
    name = table_name(site)
    ruleset = f"""
table inet {name}
delete table inet {name}
table inet {name} {{
  comment "provisioner site {site}: nothing from the lab is routed beyond its management bridge"
  chain forward {{
    type filter hook forward priority filter - 5; policy accept;
    iifname "{mgmt_bridge}" oifname != "{mgmt_bridge}" counter drop
    oifname "{mgmt_bridge}" iifname != "{mgmt_bridge}" counter drop
  }}
}}
"""
    run(["nft", "-f", "-"], input_text=ruleset)


def present(site: str) -> bool:
    return run(["nft", "list", "table", "inet", table_name(site)], check=False).returncode == 0


def remove(site: str) -> None:
    run(["nft", "delete", "table", "inet", table_name(site)], check=False)
