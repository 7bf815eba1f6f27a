"""Access networks in the desired state every backend builds from (issue 18): a segment of the kind "access" per
network (a bridge or VLAN and a leg of the gateway, at the network's first usable address unless the site names
one), never a machine on it; and the planner creating, keeping and removing them like environment segments."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import pytest
from helpers import EXAMPLE, example_with_access_networks, write_site

from provisioner.backends.base import ActualMachine, ActualSegment, ActualState, plan_changes
from provisioner.backends.network.controller_side import segment_routes
from provisioner.backends.proxmox.names import Names
from provisioner.backends.proxmox.network import vnet_design
from provisioner.planning.desired import GATEWAY, DesiredState, desired_state, gateway_interface_names
from provisioner.planning.planner import Action, Kind
from provisioner.site.load import load_site
from provisioner.site.model import Site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return load_site(write_site(tmp_path / "s", example_with_access_networks())).model


def converged(desired: DesiredState) -> ActualState:
    actual = ActualState()
    for seg in desired.segments:
        actual.segments[seg.key] = ActualSegment(seg.key, seg.environment, f"br-{seg.key}", seg.production)
    for spec in desired.machines:
        actual.machines[spec.name] = ActualMachine(
            spec.name, spec.kind, spec.environment, spec.name, spec.fingerprint(), True, True, spec.production
        )
    return actual


def test_each_access_network_is_a_segment_of_its_own_kind(site: Site):
    desired = desired_state(site)
    assert [(s.key, s.kind) for s in desired.segments] == [
        ("mgmt", "management"), ("dev", "environment"), ("test", "environment"), ("prod", "environment"),
        ("office", "access"), ("admins", "access"),
    ]  # fmt: skip
    office = desired.segment("office")
    assert (office.environment, office.production, office.vlan) == (None, False, 50)
    assert (office.cidr, office.gateway) == (ipaddress.ip_network("10.90.50.0/24"), ipaddress.ip_address("10.90.50.1"))
    assert desired.segment("admins").gateway == ipaddress.ip_address("10.90.60.1")


def test_the_gateway_has_a_leg_on_each_access_network_and_no_other_machine_does(site: Site):
    desired = desired_state(site)
    gateway = next(m for m in desired.machines if m.name == GATEWAY)
    legs = {nic.segment: (nic.name, str(nic.address), nic.prefixlen, nic.gateway) for nic in gateway.nics}
    assert legs["office"] == ("acc-office", "10.90.50.1", 24, None)
    assert legs["admins"] == ("acc-admins", "10.90.60.1", 28, None)
    for machine in desired.machines:
        if machine.name != GATEWAY:
            assert {nic.segment for nic in machine.nics} <= {"dev", "test", "prod"}, machine.name


def test_vm_nics_come_in_the_order_cloud_init_names_them(site: Site):
    """Proxmox names a VM's NICs eth0, eth1... in order: the inventory's interface names must be that order."""
    gateway = next(m for m in desired_state(site, "indexed").machines if m.name == GATEWAY)
    names = gateway_interface_names(site, "indexed")
    assert [nic.name for nic in gateway.nics] == [f"eth{i}" for i in range(6)]
    assert [names[nic.segment] for nic in gateway.nics] == [nic.name for nic in gateway.nics]


def test_a_named_gateway_address_is_the_legs_address(tmp_path: Path):
    data = example_with_access_networks()
    data["access_networks"][0]["gateway"] = "10.90.50.200"
    desired = desired_state(load_site(write_site(tmp_path / "s", data)).model)
    assert str(desired.segment("office").gateway) == "10.90.50.200"
    gateway = next(m for m in desired.machines if m.name == GATEWAY)
    assert str(next(n for n in gateway.nics if n.segment == "office").address) == "10.90.50.200"


def test_the_controller_routes_to_the_environments_only(site: Site):
    routes = segment_routes(desired_state(site), site.management)
    assert routes == {c: "10.90.0.254" for c in ("10.90.10.0/24", "10.90.20.0/24", "10.90.30.0/24")}


def test_nothing_built_plans_the_access_segments_with_the_rest(site: Site):
    plan = plan_changes(desired_state(site), ActualState())
    segments = {c.name: c for c in plan.of(Kind.SEGMENT)}
    assert set(segments) == {"mgmt", "dev", "test", "prod", "office", "admins"}
    assert segments["office"].action == Action.CREATE and segments["office"].environment is None
    assert not segments["office"].production


def test_adding_access_networks_to_a_built_site_adds_their_segments_and_rewires_only_the_gateway(site: Site):
    before = desired_state(load_site(EXAMPLE).model)
    after = desired_state(site)
    plan = plan_changes(after, converged(before))
    assert {(c.kind, c.name, c.action) for c in plan.changes} == {
        (Kind.SEGMENT, "office", Action.CREATE), (Kind.SEGMENT, "admins", Action.CREATE),
        (Kind.GATEWAY, GATEWAY, Action.UPDATE),
    }  # fmt: skip
    assert plan_changes(after, converged(after)).empty


def test_removing_them_removes_their_segments(site: Site):
    plan = plan_changes(desired_state(load_site(EXAMPLE).model), converged(desired_state(site)))
    assert {(c.kind, c.name, c.action) for c in plan.of(Kind.SEGMENT)} == {
        (Kind.SEGMENT, "office", Action.DELETE), (Kind.SEGMENT, "admins", Action.DELETE),
    }  # fmt: skip


def test_the_example_without_access_networks_builds_what_it_built_before():
    """No new segment, and the gateway's spec (so its fingerprint) is that of a site that never had any."""
    model = load_site(EXAMPLE).model
    desired = desired_state(model)
    assert [s.kind for s in desired.segments] == ["management", "environment", "environment", "environment"]
    gateway = next(m for m in desired.machines if m.name == GATEWAY)
    assert [n.name for n in gateway.nics] == ["mgmt", "seg-dev", "seg-test", "seg-prod"]


def test_proxmox_puts_an_access_network_on_a_vnet_of_its_own_named_after_it(site: Site, tmp_path: Path):
    names = Names(site)
    designs = {s.key: vnet_design(names, s) for s in desired_state(site, "indexed").segments}
    assert len({d.vnet for d in designs.values()}) == len(designs)
    assert designs["office"].vnet.startswith("offi") and designs["office"].alias.split()[2] == "office"
    assert designs["dev"].alias == f"provisioner {site.site} dev 10.90.10.0/24", "environment aliases unchanged"
    assert designs["mgmt"].alias == f"provisioner {site.site} mgmt 10.90.0.0/24"
    data = copy.deepcopy(example_with_access_networks())
    data["access_networks"][0]["vnet"] = "desks1"
    assert Names(load_site(write_site(tmp_path / "named", data)).model).vnet("office") == "desks1"


def test_the_lxc_probe_stands_on_an_access_network_at_its_last_usable_address(tmp_path: Path, monkeypatch):
    """Verify's NET-2 attempts from an access network start at the controller's probe there (nothing is built
    here: the probe point is only described)."""
    from provisioner.backends import backend_for
    from provisioner.backends.lxc.backend import LxcBackend
    from provisioner.workspace.site_state import SiteState

    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    loaded = load_site(write_site(tmp_path / "s", example_with_access_networks()))
    backend = backend_for(loaded, SiteState(loaded.name, tmp_path / "state" / loaded.name))
    assert isinstance(backend, LxcBackend)
    office = backend.probe_point("office")
    assert office is not None
    assert (office.segment, office.bridge) == ("office", backend.bridge("office"))
    assert (str(office.address), str(office.gateway)) == ("10.90.50.254/24", "10.90.50.1")
    admins = backend.probe_point("admins")
    assert admins is not None and (str(admins.address), str(admins.gateway)) == ("10.90.60.14/28", "10.90.60.1")
    dev = backend.probe_point("dev")
    assert dev is not None and (str(dev.address), str(dev.gateway)) == ("10.90.10.254/24", "10.90.10.1")
    assert office.namespace != dev.namespace and office.port != dev.port
