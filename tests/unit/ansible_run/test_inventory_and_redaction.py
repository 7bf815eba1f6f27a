"""The generated inventory, and secrets masked in whatever the tool keeps."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import EXAMPLE, example_with_access_networks, write_site

from provisioner.ansible_run.inventory import build_inventory
from provisioner.ansible_run.runner import _scrub_environment
from provisioner.site.load import load_site
from provisioner.workspace.redact import MASK, Redactor


def test_inventory_groups_per_environment_role_and_tier():
    inventory = build_inventory(load_site(EXAMPLE))
    groups = inventory["all"]["children"]
    assert set(groups["env_dev"]["hosts"]) == {"dev-app1", "dev-db1"}
    assert groups["env_dev"]["vars"]["env_colour"] == "green"
    assert groups["env_prod"]["vars"]["env_production"] is True
    assert set(groups["role_app"]["hosts"]) == {"dev-app1", "test-app1", "prod-app1"}
    assert set(groups["tier_production"]["children"]) == {"env_prod"}
    assert groups["gateways"]["hosts"]["gateway"]["ansible_host"] == "10.90.0.254"
    assert groups["env_test"]["hosts"]["test-db1"]["ansible_host"] == "10.90.20.21"
    # the accounts role keeps a login shell only for the service accounts of the host's roles
    assert groups["env_prod"]["hosts"]["prod-db1"]["host_service_accounts"] == ["postgres"]
    assert groups["env_prod"]["hosts"]["prod-app1"]["host_service_accounts"] == []


def test_redactor_masks_every_secret_in_a_tree(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "stdout").write_text("password is s3cr3t-value, again s3cr3t-value")
    (tmp_path / "b.json").write_text(json.dumps({"x": "token=abcd1234efgh"}))
    redactor = Redactor(["s3cr3t-value", "abcd1234efgh", ""])
    assert redactor.tree(tmp_path) == 2
    assert "s3cr3t" not in (tmp_path / "a" / "stdout").read_text()
    assert MASK in (tmp_path / "b.json").read_text()


def test_environment_secrets_are_masked_in_the_recorded_command(tmp_path: Path):
    job = tmp_path / "artifacts" / "job"
    job.mkdir(parents=True)
    env = {"PROXMOX_TOKEN": "pve-token-value", "DB_PASSWORD": "pw", "HOME": "/root", "ANSIBLE_PRIVATE_KEY_FILE": "/k"}
    (job / "command").write_text(json.dumps({"command": ["ansible-playbook"], "env": env}))
    _scrub_environment(tmp_path)
    recorded = json.loads((job / "command").read_text())["env"]
    assert recorded["PROXMOX_TOKEN"] == MASK and recorded["DB_PASSWORD"] == MASK
    assert recorded["HOME"] == "/root" and recorded["ANSIBLE_PRIVATE_KEY_FILE"] == "/k"


def test_access_networks_reach_the_gateway_and_the_host_firewalls_through_the_inventory(tmp_path: Path):
    site = load_site(write_site(tmp_path / "s", example_with_access_networks()))
    inventory = build_inventory(site)
    facts = inventory["all"]["vars"]
    office, admins = facts["provisioner_access_networks"]
    assert office == {
        "name": "office", "cidr": "10.90.50.0/24", "gateway": "10.90.50.1", "vlan": 50, "interface": "acc-office",
        "reaches": ["dev", "test"], "admins_only": False, "description": "developers' and testers' desks",
    }  # fmt: skip
    assert admins["interface"] == "acc-admins" and admins["admins_only"] is True
    groups = inventory["all"]["children"]
    assert groups["env_dev"]["vars"]["env_ssh_sources"] == ["10.90.0.0/24", "10.90.50.0/24", "10.90.60.0/28"]
    assert groups["env_prod"]["vars"]["env_ssh_sources"] == ["10.90.0.0/24", "10.90.60.0/28"]
    indexed = build_inventory(site, "indexed")["all"]["vars"]
    assert [a["interface"] for a in indexed["provisioner_access_networks"]] == ["eth4", "eth5"], "after the segments"
    assert [e["interface"] for e in indexed["provisioner_environments"]] == ["eth1", "eth2", "eth3"]


def test_the_example_inventory_has_no_access_network_and_ssh_from_management_only():
    facts = build_inventory(load_site(EXAMPLE))["all"]
    assert facts["vars"]["provisioner_access_networks"] == []
    for env in ("dev", "test", "prod"):
        assert facts["children"][f"env_{env}"]["vars"]["env_ssh_sources"] == ["10.90.0.0/24"]
