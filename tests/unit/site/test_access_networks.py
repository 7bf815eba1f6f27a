"""Access networks in the site file (issue 18, item 2): where people's workstations are, each naming the
environments it reaches over SSH. The refusals are in the bad corpus (tests/sites/bad/*access*); here: what is
accepted, and what an accepted one means."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from helpers import example_data, run_cli, write_site

from provisioner.errors import SiteError
from provisioner.site.load import load_site

OFFICE = {"name": "office", "cidr": "10.90.50.0/24", "description": "workstations", "reaches": ["dev", "test"]}
ADMINS = {"name": "admins", "cidr": "10.90.60.0/28", "reaches": ["dev", "test", "prod"], "admins_only": True}


def with_networks(tmp_path: Path, *networks: dict, **changes: object) -> Path:
    data = example_data()
    data["access_networks"] = [dict(n) for n in networks]
    data.update(changes)
    return write_site(tmp_path / "site", data)


def test_a_site_without_access_networks_has_none():
    assert load_site("example").model.access_networks == []


def test_developers_office_and_an_admins_network_reaching_production_are_accepted(tmp_path: Path):
    site = load_site(with_networks(tmp_path, OFFICE, ADMINS)).model
    office, admins = site.access_networks
    assert office.reaches == ["dev", "test"] and not office.admins_only
    assert admins.admins_only and "prod" in admins.reaches
    assert site.access_network("admins") is admins
    with pytest.raises(KeyError):
        site.access_network("dev")


def test_the_gateway_takes_the_first_usable_address_unless_the_site_names_one(tmp_path: Path):
    site = load_site(with_networks(tmp_path, OFFICE, {**ADMINS, "gateway": "10.90.60.9"})).model
    assert site.access_networks[0].gateway_address == ipaddress.IPv4Address("10.90.50.1")
    assert site.access_networks[1].gateway_address == ipaddress.IPv4Address("10.90.60.9")


def test_the_same_network_reaching_production_without_admins_only_is_refused_naming_the_key(tmp_path: Path):
    with pytest.raises(SiteError) as caught:
        load_site(with_networks(tmp_path, {**ADMINS, "admins_only": False}))
    (problem,) = caught.value.problems
    assert problem.path == "access_networks[0].reaches[2]"
    assert "only a network declared `admins_only: true` reaches production" in problem.message
    assert problem.message.endswith("allowed here: dev, test, or admins_only: true on this network")


def test_hypervisor_backends_take_the_access_network_on_its_own_vlan(tmp_path: Path):
    backend = {"type": "libvirt", "uri": "qemu:///system"}
    management = {**example_data()["management"], "vlan": 90}
    site = load_site(with_networks(tmp_path, {**OFFICE, "vlan": 50}, backend=backend, management=management)).model
    assert site.access_networks[0].vlan == 50
    with pytest.raises(SiteError) as caught:
        load_site(with_networks(tmp_path, OFFICE, backend=backend, management=management))
    assert [p.path for p in caught.value.problems] == ["access_networks[0].vlan"]


def test_the_environment_segments_are_checked_against_the_access_networks_too(tmp_path: Path):
    """A segment whose VLAN an access network already uses, seen from the access network's side."""
    with pytest.raises(SiteError) as caught:
        load_site(with_networks(tmp_path, {**OFFICE, "vlan": 30}))
    (problem,) = caught.value.problems
    assert problem.path == "access_networks[0].vlan" and "already used by 'prod'" in problem.message


def test_validate_names_the_access_networks_and_what_they_reach(tmp_path: Path):
    site_file = with_networks(tmp_path, OFFICE, ADMINS)
    result = run_cli("validate", str(site_file), "--json")
    assert result.rc == 0, result.stderr
    assert result.json["access_networks"] == {"office": ["dev", "test"], "admins": ["dev", "test", "prod"]}
    text = run_cli("validate", str(site_file))
    assert "access networks office → dev, test; admins → dev, test, prod (SSH only)" in " ".join(text.stdout.split())
    assert run_cli("validate", "example", "--json").json["access_networks"] == {}
