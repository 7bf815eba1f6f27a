"""Each host's nftables ruleset (NET-3), rendered by Ansible's own templating as playbooks/site.yml feeds it: SSH
from the management network and from the access networks that reach the host's environment (issue 18), and from
nowhere else; ping from management only; service ports from their declared sources only. nft checks each ruleset
in a throwaway network namespace where it can."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import EXAMPLE, example_with_access_networks, write_site
from rulesets import NFT, chain, nft_in_namespace, render_template

from provisioner.ansible_run.inventory import build_inventory
from provisioner.site.load import load_site

ROLE = Path(__file__).resolve().parents[3] / "roles" / "host_firewall"
TEMPLATE = ROLE / "templates" / "etc" / "nftables.conf.j2"
MANAGEMENT, OFFICE, ADMINS = "10.90.0.0/24", "10.90.50.0/24", "10.90.60.0/28"


def host_variables(site_file: Path) -> dict[str, dict[str, Any]]:
    """Per host, the role's variables as the play "Hosts" of playbooks/site.yml maps the inventory onto them."""
    inventory = build_inventory(load_site(site_file))["all"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    found = {}
    for group in inventory["children"].values():
        for name, host in (group.get("hosts") or {}).items():
            if "host_services" not in host:
                continue  # the gateway
            found[name] = {
                **defaults,
                "ansible_managed": "Ansible managed",
                "host_firewall_management_cidr": inventory["vars"]["provisioner_management_cidr"],
                "host_firewall_ssh_sources": group["vars"]["env_ssh_sources"],
                "host_firewall_services": host["host_services"],
            }
    return found


@pytest.fixture(scope="module")
def with_access(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """host -> its rendered ruleset, for the example with the office (dev, test) and admins (every environment)."""
    site_file = write_site(tmp_path_factory.mktemp("access"), example_with_access_networks())
    return {name: render_template(TEMPLATE, v) for name, v in host_variables(site_file).items()}


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return {name: render_template(TEMPLATE, v) for name, v in host_variables(EXAMPLE).items()}


def ssh_rule(ruleset: str) -> str:
    (rule,) = [r for r in chain(ruleset, "input") if "tcp dport 22 " in r]
    return rule


def test_ssh_from_management_and_the_access_networks_that_reach_the_environment(with_access: dict[str, str]):
    for host in ("dev-app1", "dev-db1", "test-app1", "test-db1"):
        assert ssh_rule(with_access[host]) == (
            f'ip saddr {{ {MANAGEMENT}, {OFFICE}, {ADMINS} }} tcp dport 22 accept comment "SSH"'
        ), host
    for host in ("prod-app1", "prod-db1"):
        assert ssh_rule(with_access[host]) == f'ip saddr {{ {MANAGEMENT}, {ADMINS} }} tcp dport 22 accept comment "SSH"'
        assert OFFICE not in with_access[host], "the developers' office appears nowhere in a production host's rules"


def test_access_networks_get_ssh_only_not_ping_nor_a_service_port(with_access: dict[str, str]):
    for host, ruleset in with_access.items():
        others = [r for r in chain(ruleset, "input") if "tcp dport 22 " not in r]
        assert not any(OFFICE in r or ADMINS in r for r in others), host
        assert f'ip saddr {MANAGEMENT} icmp type echo-request accept comment "ping from the management network"' in (
            others
        )
    assert chain(with_access["dev-app1"], "input")[-1] == (
        'counter log prefix "pv-host-deny " reject with icmpx type admin-prohibited'
    )


def test_without_access_networks_ssh_comes_from_management_alone(example: dict[str, str]):
    assert {ssh_rule(r) for r in example.values()} == {f'ip saddr {{ {MANAGEMENT} }} tcp dport 22 accept comment "SSH"'}


@NFT
@pytest.mark.parametrize("host", ["dev-app1", "prod-db1"])
def test_nft_accepts_the_host_rulesets(with_access: dict[str, str], example: dict[str, str], host: str, tmp_path: Path):
    for name, ruleset in (("access", with_access[host]), ("example", example[host])):
        path = tmp_path / f"{name}.conf"
        path.write_text(ruleset)
        checked = nft_in_namespace("-c", "-f", str(path))
        assert checked.returncode == 0, checked.stderr
