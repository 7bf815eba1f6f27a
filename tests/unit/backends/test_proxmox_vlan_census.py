"""The VLAN census of the Proxmox backend (issue 19, item 1): before `plan` or `apply` touches anything, a VLAN the
site file wants that anything but the site's own zone already uses on the site's bridge is refused (exit 2,
naming the user and the site file's line and key path), and so is VLAN 1. Each kind of foreign user is placed in
the fake the way Proxmox holds it; the same tag on another bridge or in an overlay zone is not a conflict, and a
built site plans again cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import example_with_access_networks, run_cli, write_site
from pvefake import FakePve
from test_proxmox_backend import backend_for, plan_refused, small_data

from provisioner.backends.proxmox.vlan_census import interface_users, nic_users, sdn_users, vlan_ranges, vlan_set

pytest.importorskip("proxmoxer")

MAC = "BC:24:11:00:00:{:02X}"


def admin_api(fake: FakePve) -> Any:
    return fake.client(token_name="census-tests")  # a token of its own: the backend's stays as it is


def sdn_zone(fake: FakePve, zone: str, kind: str, vnets: dict[str, int], apply: bool = True, **options: Any) -> None:
    """A zone and its VNets made as a sysadmin makes them, through the API; applied unless told otherwise."""
    api = admin_api(fake)
    api.cluster.sdn.zones.post(zone=zone, type=kind, **options)
    for vnet, tag in vnets.items():
        api.cluster.sdn.vnets.post(vnet=vnet, zone=zone, tag=tag)
    if apply:
        upid = api.cluster.sdn.put()
        fake.wait_tasks()
        assert api.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "OK"


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of the site file that is `text` (indentation aside)."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text)


def plan_passes(path: Path) -> None:
    result = run_cli("plan", str(path))
    assert result.rc == 0, result.stdout + result.stderr


# ---- each kind of foreign user of the production VLAN (30) on vmbr0 ------------------------------------------------
def _vm_nic(fake: FakePve) -> str:
    fake.add_vm(105, {"name": "office-pc", "net0": f"virtio={MAC.format(1)},bridge=vmbr0",
                      "net1": f"virtio={MAC.format(2)},bridge=vmbr0,tag=30"})  # fmt: skip
    return "VM 105 'office-pc' net1 on node pve1"


def _lxc_nic(fake: FakePve) -> str:
    fake.add_lxc(106, "office-db", {0: "name=eth0,bridge=vmbr0,ip=dhcp,tag=30"}, status="running")
    return "container 106 'office-db' net0 on node pve1"


def _trunk(fake: FakePve) -> str:
    fake.add_vm(107, {"name": "router", "net0": f"virtio={MAC.format(3)},bridge=vmbr0,trunks=25-35;99"})
    return "VM 107 'router' net0 (trunk 25-35, 99) on node pve1"


def _other_zone(fake: FakePve) -> str:
    sdn_zone(fake, "other", "vlan", {"abc123": 30}, bridge="vmbr0")
    return "VNet abc123 in zone other"


def _other_zone_pending(fake: FakePve) -> str:
    sdn_zone(fake, "other", "vlan", {"abc123": 30}, apply=False, bridge="vmbr0")
    return "VNet abc123 in zone other (pending, not applied yet)"


def _node_interface(fake: FakePve) -> str:
    fake.add_vlan_interface("vmbr0.30")
    return "interface vmbr0.30 on node pve1"


def _interface_on_a_port_of_another_node(fake: FakePve) -> str:
    fake.add_node("pve2")
    fake.add_vlan_interface("office", raw_device="eno1", vlan_id=30, node="pve2")
    return "interface office (on eno1, a port of vmbr0) on node pve2"


def _vm_of_another_node(fake: FakePve) -> str:
    fake.add_node("pve2")
    fake.add_vm(205, {"name": "backup", "net0": f"virtio={MAC.format(4)},bridge=vmbr0,tag=30"}, node="pve2")
    return "VM 205 'backup' net0 on node pve2"


def _qinq_service_vlan(fake: FakePve) -> str:
    sdn_zone(fake, "carrier", "qinq", {"cust1": 100}, bridge="vmbr0", tag=30)
    return "QinQ zone carrier (service VLAN)"


FOREIGN_USERS = {
    "a tagged VM NIC": _vm_nic,
    "a tagged container NIC": _lxc_nic,
    "a trunk": _trunk,
    "another zone's VNet": _other_zone,
    "another zone's VNet not applied yet": _other_zone_pending,
    "a node's VLAN interface": _node_interface,
    "a VLAN interface on a bridge port of another node": _interface_on_a_port_of_another_node,
    "a VM on another node": _vm_of_another_node,
    "a QinQ zone's service VLAN": _qinq_service_vlan,
}


@pytest.mark.parametrize("make_user", list(FOREIGN_USERS.values()), ids=list(FOREIGN_USERS))
def test_a_foreign_user_of_the_production_vlan_is_refused_before_anything(fake, tmp_path, make_user):
    who = make_user(fake)
    path = write_site(tmp_path / "pvflow", small_data(fake))
    stderr = plan_refused(fake, path)
    line = line_of(path, "vlan: 30")
    assert (
        f"{path}:{line}: environments[2].segment.vlan: VLAN 30 (production environment 'prod') is already in use on "
        f"bridge vmbr0 by {who}: the segment would share their broadcast domain; allowed: a VLAN id 2-4094 that "
        "nothing but this site uses on vmbr0" in stderr
    ), stderr
    assert "this site's: 5, 10, 20, 30)" in stderr, stderr


def test_every_refused_vlan_is_named_at_its_own_key(fake, tmp_path):
    """Management, an environment and an access network, each where the site file sets it; the users listed."""
    fake.add_vlan_interface("vmbr0.5")
    fake.add_vm(105, {"name": "desk1", "net0": f"virtio={MAC.format(5)},bridge=vmbr0,tag=50"})
    fake.add_lxc(106, "desk2", {0: "name=eth0,bridge=vmbr0,ip=dhcp,tag=50"})
    fake.add_vm(107, {"name": "lab", "net0": f"virtio={MAC.format(6)},bridge=vmbr0,tag=10"})
    data = small_data(fake)
    data["access_networks"] = example_with_access_networks()["access_networks"]
    path = write_site(tmp_path / "pvflow", data)
    stderr = plan_refused(fake, path)
    expected = {
        ("management.vlan", "vlan: 5"): "VLAN 5 (the management network) is already in use on bridge vmbr0 by "
        "interface vmbr0.5 on node pve1:",
        ("environments[0].segment.vlan", "vlan: 10"): "VLAN 10 (development environment 'dev') is already in use on "
        "bridge vmbr0 by VM 107 'lab' net0 on node pve1:",
        ("access_networks[0].vlan", "vlan: 50"): "VLAN 50 (access network 'office') is already in use on bridge vmbr0 "
        "by VM 105 'desk1' net0 on node pve1, container 106 'desk2' net0 on node pve1:",
    }
    for (key, text), message in expected.items():
        assert f"{path}:{line_of(path, text)}: {key}: {message}" in stderr, stderr
    assert "(in use there by others: 5, 10, 50;" in stderr
    assert "environments[1]" not in stderr and "environments[2]" not in stderr and "access_networks[1]" not in stderr


def test_vlan_1_is_refused(fake, tmp_path):
    data = small_data(fake)
    data["environments"][0]["segment"]["vlan"] = 1
    path = write_site(tmp_path / "pvflow", data)
    stderr = plan_refused(fake, path)
    assert (
        f"{path}:{line_of(path, 'vlan: 1')}: environments[0].segment.vlan: VLAN 1 (development environment 'dev') is "
        "the default (native) VLAN of most switches, and the VLAN Proxmox puts every untagged guest NIC on a "
        "VLAN-aware bridge (vmbr0) in: the segment would share their broadcast domain; allowed: a VLAN id 2-4094 of "
        "its own" in stderr
    ), stderr


def test_vlan_1_is_said_even_where_the_cluster_cannot_be_read(fake, tmp_path):
    fake.add_node("pve2", status="offline")
    data = small_data(fake)
    data["management"]["vlan"] = 1
    path = write_site(tmp_path / "pvflow", data)
    stderr = plan_refused(fake, path)
    assert f"{path}:{line_of(path, 'vlan: 1')}: management.vlan: VLAN 1 (the management network) is the" in stderr


def test_a_node_that_is_not_online_is_a_refusal_not_a_guess(fake, tmp_path):
    """Its guests cannot be read (Proxmox answers 595), and one of them could use the site's VLANs."""
    fake.add_node("pve2", status="offline")
    fake.add_node("pve3")
    path = write_site(tmp_path / "pvflow", small_data(fake))
    stderr = plan_refused(fake, path)
    assert (
        f"{path}: backend: node pve2 (offline) is not online, so the guests and interfaces there cannot be read, "
        "and one of them could use a VLAN of this site on vmbr0; allowed: plan and apply while every node of the "
        "cluster is online" in stderr
    ), stderr
    assert not [r for r in fake.requests if r.path.startswith("/nodes/pve2/")], "an offline node is not asked"


def test_a_token_that_cannot_see_every_guest_is_refused(fake, tmp_path):
    """Proxmox leaves out of its lists, without a word, the guests a token may not audit."""
    fake.add_user("prov@pve")
    secret = fake.add_token("prov@pve", "plan", privsep=False)
    fake.add_acl("/vms/9000", "PVEAuditor", user="prov@pve")  # the template only
    fake.add_acl("/sdn", "PVEAuditor", user="prov@pve")
    for where in ("/pool", "/access"):  # what plan's own discovery reads: the refusal is the census's
        fake.add_acl(where, "PVEAuditor", user="prov@pve")
    fake.add_acl("/", "PVEAuditor", user="prov@pve", propagate=False)  # the datacenter firewall, on / alone
    token = {"id": "prov@pve!plan", "env": "PROVISION_PVE_TOKEN"}
    path = write_site(tmp_path / "pvflow", small_data(fake, token=token))
    stderr = plan_refused(fake, path, env={"PROVISION_PVE_TOKEN": secret})
    assert f"{path}: backend.token: the token prov@pve!plan lacks " in stderr, stderr
    assert "VM.Audit on /vms (propagated) (read every guest for the VLAN census)" in stderr, stderr


# ---- what is not a conflict ----------------------------------------------------------------------------------------
def test_the_same_tags_elsewhere_are_not_conflicts(fake, tmp_path):
    """On another bridge, as a VXLAN VNI, as a QinQ zone's inner tag, untagged on the bridge, or in a template
    (on no network until cloned): none of them is VLAN 30 on vmbr0."""
    fake.add_bridge("vmbr1")
    fake.add_vm(105, {"name": "lab-pc", "net0": f"virtio={MAC.format(7)},bridge=vmbr1,tag=30"})
    fake.add_lxc(106, "lab-db", {0: "name=eth0,bridge=vmbr1,ip=dhcp,tag=10,trunks=20;30"})
    fake.add_vm(107, {"name": "plain", "net0": f"virtio={MAC.format(8)},bridge=vmbr0"})
    fake.add_template(9001, name="tagged-template", extra={"net0": f"virtio={MAC.format(9)},bridge=vmbr0,tag=30"})
    fake.add_vlan_interface("vmbr1.30")
    fake.add_vlan_interface("eno2.20")  # eno2 is not a port of vmbr0
    sdn_zone(fake, "lab", "vlan", {"lab30": 30}, bridge="vmbr1")
    sdn_zone(fake, "overlay", "vxlan", {"vx30": 30}, peers="10.0.0.1,10.0.0.2")
    sdn_zone(fake, "carrier", "qinq", {"cust30": 30}, bridge="vmbr0", tag=40)
    plan_passes(write_site(tmp_path / "pvflow", small_data(fake)))


def test_a_built_site_plans_again_its_own_vnets_and_vms_are_no_conflict(fake, tmp_path):
    """The site's zone holds its VLANs, and its VMs sit on its VNets: the census reads them and passes."""
    data = small_data(fake)
    backend = backend_for(tmp_path, data)
    backend.preflight()
    backend.preflight_build()
    backend.apply(backend.plan(), lambda message: None)
    start = len(fake.requests)
    plan_passes(write_site(tmp_path / "pvflow", data))
    read = {r.route for r in fake.requests[start:]}
    assert {"/nodes/{node}/qemu/{vmid}/config", "/cluster/sdn/vnets", "/nodes/{node}/lxc"} <= read, read
    # a foreign VM that joins production's VLAN afterwards is found on the next plan
    fake.add_vm(150, {"name": "intruder", "net0": f"virtio={MAC.format(10)},bridge=vmbr0,tag=30"})
    assert "by VM 150 'intruder' net0 on node pve1" in plan_refused(fake, write_site(tmp_path / "pvflow", data))


# ---- the readers, on what Proxmox lists ----------------------------------------------------------------------------
def test_vlan_lists_and_ranges():
    assert vlan_set("10;20-22") == {10, 20, 21, 22}
    assert vlan_set("") == frozenset() and vlan_set("x;0;5000") == frozenset()
    assert vlan_ranges({30, 5, 6, 7, 99}) == "5-7, 30, 99"


def test_nic_users_read_tags_and_trunks_of_qemu_and_lxc_nics_on_the_bridge_only():
    config = {
        "name": "x",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=30",
        "net1": "name=eth1,bridge=vmbr0,hwaddr=BC:24:11:00:00:02,ip=dhcp,trunks=40;41",
        "net2": "virtio=BC:24:11:00:00:03,bridge=vnetab12,tag=50",  # a VNet: not the bridge's VLANs
        "netmask": "not a NIC",
    }
    users = nic_users(config, "vmbr0", "VM 1 'x'", "n")
    assert [(sorted(u.vlans), u.who) for u in users] == [
        ([30], "VM 1 'x' net0 on node n"),
        ([40, 41], "VM 1 'x' net1 (trunk 40-41) on node n"),
    ]


def test_interface_users_read_vlan_interfaces_ovs_ports_and_access_ports():
    entries = [
        {"iface": "vmbr0", "type": "bridge", "bridge_ports": "bond0 eno3"},
        {"iface": "bond0.30", "type": "vlan", "vlan-raw-device": "bond0", "vlan-id": 30},
        {"iface": "vlan31", "type": "vlan", "vlan-raw-device": "vmbr0"},
        {"iface": "eno9.32", "type": "vlan"},  # not on the bridge
        {"iface": "eno3", "type": "eth", "bridge-access": 33},
        {"iface": "mgmt", "type": "OVSIntPort", "ovs_bridge": "vmbr0", "ovs_tag": 34},
        {"iface": "other", "type": "OVSIntPort", "ovs_bridge": "vmbr5", "ovs_tag": 35},
    ]
    found = {(min(u.vlans), u.who) for u in interface_users(entries, "vmbr0", "pve1")}
    assert found == {
        (30, "interface bond0.30 (on bond0, a port of vmbr0) on node pve1"),
        (31, "interface vlan31 on node pve1"),
        (33, "port eno3 of vmbr0 (access VLAN) on node pve1"),
        (34, "OVS internal port mgmt on node pve1"),
    }


def test_sdn_users_count_applied_and_pending_values_and_skip_the_sites_own_zone():
    zones = [
        {"zone": "own", "type": "vlan", "bridge": "vmbr0"},
        {"zone": "moving", "type": "vlan", "bridge": "vmbr1", "state": "changed", "pending": {"bridge": "vmbr0"}},
        {"zone": "fresh", "type": "qinq", "state": "new", "pending": {"bridge": "vmbr0", "tag": 60}},
    ]
    vnets = [
        {"vnet": "mine", "zone": "own", "tag": 30},
        {"vnet": "retag", "zone": "moving", "tag": 40, "state": "changed", "pending": {"tag": 41}},
        {"vnet": "gone", "zone": "moving", "tag": 42, "state": "deleted"},
        {"vnet": "inner", "zone": "fresh", "type": "vnet", "state": "new", "pending": {"zone": "fresh", "tag": 7}},
    ]
    found = {(min(u.vlans), u.who) for u in sdn_users(zones, vnets, "vmbr0", "own")}
    assert found == {
        (40, "VNet retag in zone moving"),
        (41, "VNet retag in zone moving (pending, not applied yet)"),
        (42, "VNet gone in zone moving"),
        (60, "QinQ zone fresh (service VLAN) (pending, not applied yet)"),
    }
