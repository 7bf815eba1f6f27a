"""Proxmox's firewall in force, not just configured (issue 19, items 2 and 3).

The fake applies the node's firewall to every new connection to its API as pve-firewall builds it (host rules,
datacenter rules, the `management` IP set with the node's local network, then policy_in DROP; open connections
kept by conntrack), so switching the datacenter firewall on can really lock a client out here. The backend must
admit itself first, prove new connections still work, and switch back over the open connection when they do not.
What is in force is read back for plan, status and NET-3."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, write_site
from pvefake import FakePve
from test_proxmox_backend import backend_for, converge, small_data

from provisioner.backends.proxmox.enforcement import MANAGEMENT_IPSET, off_note
from provisioner.errors import BackendError

pytest.importorskip("proxmoxer")


def options(fake: FakePve) -> dict:
    return dict(fake.state.firewall.cluster_options)


def management(fake: FakePve) -> list[str]:
    ipset = fake.state.firewall.ipsets.get(MANAGEMENT_IPSET)
    return [str(e["cidr"]) for e in ipset.entries] if ipset else []


def test_the_fake_locks_out_new_connections_and_keeps_the_open_one(fake):
    """The hazard is real in the fake: a client that switches the firewall on without being in `management` loses
    new connections at once, and only the connection it still holds can switch it back."""
    held = fake.client(token_name="holder")
    assert held.version.get()["version"]
    held.cluster.firewall.options.put(enable=1)
    with pytest.raises(Exception) as refused:
        fake.client(token_name="newcomer").version.get()
    assert "Connection" in type(refused.value).__name__ or "connection" in str(refused.value).lower(), refused.value
    assert fake.refused_connections() == [("127.0.0.1", "the datacenter's policy_in DROP")]
    held.cluster.firewall.options.put(enable=0)  # over the open connection
    assert fake.client(token_name="newcomer").version.get()["version"]


def test_apply_admits_the_controller_switches_the_firewall_on_and_plans_clean(fake, tmp_path):
    backend = backend_for(tmp_path, small_data(fake))
    plan = backend.plan()
    assert ("update", "datacenter-firewall") in {(str(c.action), c.name) for c in plan.changes}
    assert not plan.notes, "datacenter_firewall defaults to true: the plan switches it on instead of noting it off"
    converge(backend)
    assert options(fake)["enable"] == 1
    assert management(fake) == ["127.0.0.1"], "the controller's address as the node sees it, before the switch"
    assert fake.refused_connections() == [], "no connection was ever refused"
    fake.client(token_name="after").version.get()  # a new connection from the controller's address still works
    again = backend_for(tmp_path, small_data(fake)).plan()
    assert again.empty and not again.notes, again


def test_a_controller_behind_a_nat_is_refused_and_the_firewall_goes_back_off(fake, tmp_path):
    """The node sees another address than the controller's own: admitting the controller's address does not help,
    new connections are refused, and apply switches the firewall back off over the open connection."""
    fake.state.firewall.seen_as = "203.0.113.9"
    backend = backend_for(tmp_path, small_data(fake))
    with pytest.raises(BackendError) as failed:
        converge(backend)
    message = str(failed.value)
    assert "refused new connections from the controller (127.0.0.1)" in message, message
    assert "switched back off over the connection still open" in message, message
    assert options(fake)["enable"] == 0, "the firewall is off again"
    assert fake.refused_connections(), "the lockout happened: a new connection was refused"
    assert all(why == "the datacenter's policy_in DROP" for _, why in fake.refused_connections())
    fake.state.firewall.seen_as = None
    assert fake.client(token_name="after").version.get()["version"], "the API admits new connections again"


def test_a_datacenter_rule_that_drops_the_api_is_caught_the_same_way(fake, tmp_path):
    """A rule above the `management` set wins (pve-firewall puts the rules first): the switch is undone."""
    admin = fake.client(token_name="admin")
    admin.cluster.firewall.rules.post(type="in", action="DROP", proto="tcp", dport="8006", enable=1)
    with pytest.raises(BackendError, match="switched back off"):
        converge(backend_for(tmp_path, small_data(fake)))
    assert options(fake)["enable"] == 0
    assert any(why == "datacenter rule 0: DROP" for _, why in fake.refused_connections())


def test_a_firewall_left_off_is_noted_by_plan_and_status_and_is_not_in_force(fake, tmp_path):
    data = small_data(fake, datacenter_firewall=False)
    backend = backend_for(tmp_path, data)
    converge(backend)
    assert options(fake).get("enable", 0) == 0, "the site asked to leave it off"
    plan = backend_for(tmp_path, data).plan()
    assert plan.empty and plan.notes == [off_note()], plan
    reading = backend_for(tmp_path, data).hypervisor_firewall()
    assert not reading.enforced and off_note() in reading.problems
    site_file = write_site(tmp_path / data["site"], data)
    shown = run_cli("plan", str(site_file), env={"PROVISION_STATE_DIR": str(tmp_path / "state")})
    assert shown.rc == 0 and "note: the Proxmox datacenter firewall is off" in shown.stdout, shown
    status = run_cli("status", str(site_file), "--json", env={"PROVISION_STATE_DIR": str(tmp_path / "state")})
    assert status.rc == 0, status.stderr
    firewall = json.loads(status.stdout)["hypervisor_firewall"]
    assert firewall["enforced"] is False and off_note() in firewall["problems"], firewall


def _vmid(fake: FakePve, name: str) -> int:
    return next(vm.vmid for vm in fake.state.vms.values() if vm.config.get("name") == name)


def test_the_read_back_finds_each_way_a_vm_escapes_its_security_group(fake, tmp_path):
    data = small_data(fake)
    converge(backend_for(tmp_path, data))
    reading = backend_for(tmp_path, data).hypervisor_firewall()
    assert reading.enforced and not reading.problems, reading
    assert set(reading.machines) == {"dev-app1", "prod-db1"} and not any(reading.machines.values()), reading
    admin = fake.client(token_name="admin")
    dev, prod = _vmid(fake, "pvflow-dev-app1"), _vmid(fake, "pvflow-prod-db1")
    net0 = str(fake.state.vms[dev].config["net0"])
    admin.nodes("pve1").qemu(dev).config.put(net0=net0.replace("firewall=1", "firewall=0"))
    admin.nodes("pve1").qemu(prod).firewall.rules.post(type="in", action="ACCEPT", proto="tcp", dport="5432", enable=1)
    group = backend_for(tmp_path, data).names.security_group("prod")
    admin.cluster.firewall.groups(group).post(type="in", action="ACCEPT", source="10.0.0.0/8", enable=1)
    reading = backend_for(tmp_path, data).hypervisor_firewall()
    assert reading.machines["dev-app1"] == [f"VM {dev}: net0 has no firewall=1, so its traffic bypasses the firewall"]
    assert reading.machines["prod-db1"] == [
        f"VM {prod}: its own rule 0 accepts proto tcp, dport 5432 beyond the site's policy"
    ]
    assert len(reading.problems) == 1 and reading.problems[0].startswith(f"security group {group} holds "), reading
    admin.nodes("pve1").qemu(prod).firewall.options.put(enable=0)
    admin.cluster.firewall.options.put(enable=0)
    reading = backend_for(tmp_path, data).hypervisor_firewall()
    assert not reading.enforced and off_note() in reading.problems
    assert f"VM {prod}: its firewall is off" in reading.machines["prod-db1"]


def test_a_flow_of_more_than_15_ports_becomes_rules_proxmox_accepts(fake, tmp_path):
    """pve-firewall refuses a port list of more than 15 numbers (a range counts two); the fake refuses it as
    Proxmox does, and the backend splits the flow's ports over several rules of the security group."""
    admin = fake.client(token_name="admin")
    admin.cluster.firewall.groups.post(group="wide")
    many = ",".join(str(p) for p in range(8000, 8016))
    with pytest.raises(Exception, match=r"too many entries in port list \(> 15 numbers\)"):
        admin.cluster.firewall.groups("wide").post(type="in", action="ACCEPT", proto="tcp", dport=many, enable=1)
    with pytest.raises(Exception, match="too many entries"):
        admin.cluster.firewall.groups("wide").post(type="in", action="ACCEPT", proto="tcp", dport="1:2," * 7 + "3,4")
    data = small_data(fake)
    data["flows"] = [{"from": "prod", "to": "dev", "ports": list(range(8000, 8020)), "description": "many ports"}]
    backend = backend_for(tmp_path, data)
    converge(backend)
    group = backend.names.security_group("dev")
    ports = [r["dport"] for r in admin.cluster.firewall.groups(group).get() if r.get("comment", "").startswith("flow")]
    assert sorted(ports) == [",".join(map(str, range(8000, 8015))), ",".join(map(str, range(8015, 8020)))], ports
    reading = backend_for(tmp_path, data).hypervisor_firewall()
    assert not reading.problems, reading.problems
