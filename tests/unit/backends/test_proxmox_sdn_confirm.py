"""SDN apply confirmed per node from the network state, not from the task (issue 19, item 6).

Upstream, `PUT /cluster/sdn` returns a `reloadnetworkall` task that only starts a network reload on each node and
warns about one it cannot reach; its `OK` says nothing about the networks. Each node then reports its SDN state
(`GET /nodes/{node}/sdn/zones`, `…/zones/{zone}/content`): pending until it has reloaded, error where the
interfaces did not come up. The fake does the same, with the node's reload taking `reload_seconds` and failing
where told, so a backend that trusted the task would start VMs on bridges that do not exist yet."""

from __future__ import annotations

import time

import pytest
from test_proxmox_backend import backend_for, converge, site_vms, small_data

from provisioner.backends.proxmox.client import PveError

pytest.importorskip("proxmoxer")


def test_the_fakes_apply_task_succeeds_while_a_nodes_network_is_still_pending(fake):
    """What makes the confirmation necessary, shown on the fake with a client of the test's own."""
    api = fake.client(token_name="sdn-tests")
    fake.state.sdn.reload_seconds = 1.5
    api.cluster.sdn.zones.post(zone="tz", type="vlan", bridge="vmbr0")
    api.cluster.sdn.vnets.post(vnet="tv1", zone="tz", tag=40)
    upid = api.cluster.sdn.put()
    fake.wait_tasks()
    assert api.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "OK"
    assert api.nodes("pve1").sdn.zones.get() == [{"zone": "tz", "status": "pending"}]
    (content,) = api.nodes("pve1").sdn.zones("tz").content.get()
    assert content["status"] == "pending" and "not yet generated, please reload" in content["statusmsg"], content
    time.sleep(2)
    assert api.nodes("pve1").sdn.zones.get() == [{"zone": "tz", "status": "available"}]
    assert api.nodes("pve1").sdn.zones("tz").content.get() == [{"vnet": "tv1", "status": "available"}]


def test_apply_waits_until_every_node_has_brought_the_site_networks_up(fake, tmp_path):
    fake.add_node("pve2")
    fake.state.sdn.reload_seconds = 1.0
    converge(backend_for(tmp_path, small_data(fake)))
    running = {vm["name"]: vm["status"] for vm in site_vms(fake, "pvflow")}
    assert running and set(running.values()) == {"running"}, running
    asked = {r.path for r in fake.requests if r.route == "/nodes/{node}/sdn/zones/{zone}/content"}
    assert any("/nodes/pve1/" in p for p in asked) and any("/nodes/pve2/" in p for p in asked), asked


@pytest.mark.parametrize("node", ["pve1", "pve2"])
def test_a_node_whose_network_does_not_come_up_fails_the_apply_naming_it(fake, tmp_path, node):
    fake.add_node("pve2")
    fake.state.sdn.reload_errors[node] = "vmbr0: cannot bring up interface"
    with pytest.raises(PveError) as failed:
        converge(backend_for(tmp_path, small_data(fake)))
    message = str(failed.value)
    assert f"node {node}" in message and "vmbr0: cannot bring up interface" in message, message
    assert not [vm for vm in site_vms(fake, "pvflow") if vm["status"] == "running"], "no VM was started"
