"""VMs over several nodes (`backend.nodes`, `backend.placement`): the spread, the pins, a VM that exists stays
where it is, and the refusals before anything is touched (a template on local storage, a node offline or unknown,
a pin to a node or of a host the site file does not have). The fake's clone with `target` as qemu-server's."""

from __future__ import annotations

import pytest
from helpers import write_site
from proxmoxer.core import ResourceException
from pvefake import FakePve
from test_proxmox_backend import backend_for, converge, plan_refused, small_data

from provisioner.backends.proxmox.machines import VmLifecycle
from provisioner.backends.proxmox.names import Names
from provisioner.backends.proxmox.placement import place
from provisioner.site.model import ProxmoxSettings

pytest.importorskip("proxmoxer")


def two_nodes(fake: FakePve, template_storage: str = "ceph") -> None:
    fake.add_node("pve2")
    fake.add_storage("ceph", type="rbd", content="images,rootdir", shared=1)
    fake.add_template(9100, name="debian12-shared", storage=template_storage)


def placed_data(fake: FakePve, **backend: object) -> dict:
    data = small_data(fake, "pvplace", template=9100, nodes=["pve1", "pve2"], **backend)
    return data


def nodes_of(fake: FakePve) -> dict[str, str]:
    api = fake.client(token_name="tests")
    return {
        str(r["name"]).removeprefix("pvplace-"): str(r["node"])
        for r in api.cluster.resources.get(type="vm")
        if str(r.get("name")).startswith("pvplace-")
    }


def test_new_vms_are_spread_and_a_second_apply_changes_nothing(fake, tmp_path):
    two_nodes(fake)
    first = backend_for(tmp_path, placed_data(fake))
    first.preflight()
    first.preflight_build()
    plan = first.plan()
    assert any("dev-app1 on pve2" in note and "prod-db1 on pve1" in note for note in plan.notes), plan.notes
    first.apply(plan, lambda message: None)
    fake.wait_tasks()
    placed = nodes_of(fake)
    gateway = next(name for name in placed if name not in ("dev-app1", "prod-db1"))
    assert placed == {gateway: "pve1", "dev-app1": "pve2", "prod-db1": "pve1"}
    again = backend_for(tmp_path, placed_data(fake))
    again.preflight()
    assert again.plan().empty and not again.plan().notes
    # another order of nodes moves nothing: the VMs stay where they are
    turned = backend_for(tmp_path, small_data(fake, "pvplace", template=9100, nodes=["pve2", "pve1"]))
    turned.preflight()
    assert turned.plan().empty


def test_a_pinned_host_goes_to_its_node_and_the_others_fill_up_around_it(fake, tmp_path):
    two_nodes(fake)
    converge(backend_for(tmp_path, placed_data(fake, placement={"prod-db1": "pve2"})))
    fake.wait_tasks()
    placed = nodes_of(fake)
    assert placed["prod-db1"] == "pve2"
    assert placed["dev-app1"] == "pve1", "the tie after the pin goes to the first node"


def test_placement_is_deterministic_and_keeps_existing_vms(tmp_path):
    settings = ProxmoxSettings.model_validate(
        {
            "type": "proxmox",
            "host": "h",
            "node": "a",
            "nodes": ["a", "b", "c"],
            "placement": {"db": "c"},
            "token": {"id": "u@pve!t", "env": "E"},
            "template": 9000,
        }
    )
    names = ["gw", "db", "h1", "h2", "h3"]
    assert place(settings, names, {}) == {"db": "c", "gw": "a", "h1": "b", "h2": "a", "h3": "b"}
    assert place(settings, names, {}) == place(settings, names, {})
    # a VM that exists keeps its node and counts there; one off `nodes` counts nowhere and a new VM of it is spread
    kept = place(settings, names, {"h1": "c", "h2": "z"})
    assert kept == {"db": "c", "h1": "c", "gw": "a", "h2": "b", "h3": "a"}


def refused(fake: FakePve, tmp_path, data: dict) -> str:
    return plan_refused(fake, write_site(tmp_path / "pvplace", data))


def test_a_template_on_local_storage_cannot_be_cloned_to_another_node(fake, tmp_path):
    two_nodes(fake, template_storage="local-lvm")
    stderr = refused(fake, tmp_path, placed_data(fake))
    assert "backend.nodes" in stderr and "'local-lvm'" in stderr and "not shared" in stderr
    assert "can't clone VM to node 'pve2' (VM uses local storage)" in stderr


def test_a_full_clone_onto_another_node_needs_a_shared_target_storage(fake, tmp_path):
    two_nodes(fake)
    stderr = refused(fake, tmp_path, placed_data(fake, full_clone=True, storage="local-lvm"))
    assert "backend.storage" in stderr and "can't clone to non-shared storage 'local-lvm'" in stderr


@pytest.mark.parametrize(
    ("change", "key_path", "text"),
    [
        ({"nodes": ["pve1", "pve3"]}, "backend.nodes[1]", "not in the cluster"),
        ({"nodes": ["pve1", "pveoff"]}, "backend.nodes[1]", "is offline"),
        ({"nodes": ["pve1", "pve2", "pve1"]}, "backend.nodes[2]", "listed twice"),
        ({"placement": {"dev-app9": "pve2"}}, "backend.placement.dev-app9", "not a host of the site file"),
        ({"placement": {"dev-app1": "pve7"}}, "backend.placement.dev-app1", "not one of backend.nodes"),
    ],
)
def test_nodes_and_pins_the_cluster_or_the_site_cannot_honour_are_refused(fake, tmp_path, change, key_path, text):
    two_nodes(fake)
    fake.add_node("pveoff", "offline")
    data = placed_data(fake)
    data["backend"].update(change)
    stderr = refused(fake, tmp_path, data)
    assert key_path in stderr and text in stderr, stderr


def test_every_node_of_nodes_needs_the_bridge(fake, tmp_path):
    two_nodes(fake)
    fake.add_bridge("vmbr0", nodes=["pve1"])  # on the template's node only
    fake.add_bridge("vmbr1", nodes=["pve2"])
    stderr = refused(fake, tmp_path, placed_data(fake))
    assert "backend.bridge" in stderr and "node pve2 has no bridge 'vmbr0'" in stderr, stderr


# ---- the fake's clone with `target`, as qemu-server's clone_vm ----------------------------------------------------
def test_the_fake_refuses_a_clone_to_another_node_from_local_storage(fake):
    fake.add_node("pve2")
    api = fake.client()
    with pytest.raises(ResourceException, match=r"can't clone VM to node 'pve2' \(VM uses local storage\)"):
        api.nodes("pve1").qemu(9000).clone.post(newid=200, target="pve2")
    with pytest.raises(ResourceException, match=r"no such cluster node 'pve5'"):
        api.nodes("pve1").qemu(9000).clone.post(newid=200, target="pve5")
    assert 200 not in fake.state.vms


def test_the_fake_clones_from_shared_storage_onto_the_target_node(fake):
    two_nodes(fake)
    api = fake.client()
    upid = api.nodes("pve1").qemu(9100).clone.post(newid=201, target="pve2", name="moved")
    assert upid.split(":")[1] == "pve1", "the clone runs on the template's node"
    fake.wait_tasks()
    assert api.nodes("pve2").qemu(201).config.get()["name"] == "moved"
    with pytest.raises(ResourceException, match="does not exist"):
        api.nodes("pve1").qemu(201).config.get()
    with pytest.raises(ResourceException, match="can't clone to non-shared storage 'local-lvm'"):
        api.nodes("pve1").qemu(9100).clone.post(newid=202, target="pve2", full=1, storage="local-lvm")
    # the local node as target is no target
    api.nodes("pve1").qemu(9000).clone.post(newid=203, target="pve1")
    fake.wait_tasks()
    assert api.nodes("pve1").qemu(203).config.get()


def test_a_clone_onto_another_node_whose_answer_was_lost_is_waited_for_on_its_target(fake, tmp_path):
    """The lost-answer path of the clone: the VM is found as ours on the template's node while the copy runs, and
    the wait ends once it is unlocked on the target node."""
    two_nodes(fake)
    backend = backend_for(tmp_path, placed_data(fake))
    lifecycle = VmLifecycle(backend.client, Names(backend.site.model), backend.settings, "ssh-ed25519 AAAAC3 test")
    fake.task_seconds = 0.6
    fake.client(token_name="tests").nodes("pve1").qemu(9100).clone.post(
        newid=300, target="pve2", name="pvplace-dev-app1"
    )
    assert lifecycle._is_ours(300, "pvplace-dev-app1", "pve2"), "not found while the copy runs on pve1"
    assert fake.state.vms[300].node is None, "the copy is still on the template's node"
    lifecycle._wait_cloned("pve2", 300, "dev-app1")
    assert fake.state.vms[300].node == "pve2" and not fake.state.vms[300].config.get("lock")
    assert not lifecycle._is_ours(300, "pvplace-other", "pve2")
