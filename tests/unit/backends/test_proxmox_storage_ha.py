"""Issue 19, items 10 and 8, against the fake: the template's storage is checked before a linked or full clone
(plain LVM cannot make linked clones; a full clone goes to a storage that can hold it), a clone refusal that
cannot change is not retried; HA-managed VMs are stopped and started through the HA manager and waited for, taken
out of HA before they are destroyed, refused in a state the apply must not touch; a migrated VM is handled on the
node it is on."""

from __future__ import annotations

import pytest
import test_proxmox_backend as flows
from helpers import run_cli, write_site
from pvefake import FakePve

from provisioner.backends.proxmox.client import PveError
from provisioner.errors import InputError, ProvisionError

pytest.importorskip("proxmoxer")

small_data, backend_for, converge, site_vms = flows.small_data, flows.backend_for, flows.converge, flows.site_vms
LVM_TEMPLATE = 9001


def _on_plain_lvm(fake: FakePve) -> None:
    """A thick LVM volume group holding VM images, with a template on it, as SMEs often have."""
    fake.add_storage("vg-data", type="lvm", content="images,rootdir")
    fake.add_template(LVM_TEMPLATE, name="debian12-on-lvm", storage="vg-data")


def _writes(fake: FakePve, start: int) -> list[tuple[str, str]]:
    return [(r.method, r.route) for r in fake.requests[start:] if r.method != "GET"]


# -- item 10: storage ------------------------------------------------------------------------------------------


def test_a_linked_clone_from_plain_lvm_is_refused_before_anything_is_written(fake, tmp_path):
    _on_plain_lvm(fake)
    path = write_site(tmp_path / "pvflow", small_data(fake, template=LVM_TEMPLATE))
    start = len(fake.requests)
    result = run_cli("plan", str(path))
    assert result.rc == 2, result.stderr
    for part in (str(path), "backend.full_clone", "scsi0", "vg-data:base-9001-disk-0", "'vg-data' of type 'lvm'",
                 "full_clone: true", "storage: <storage>", "(local-lvm, vg-data)"):  # fmt: skip
        assert part in result.stderr, (part, result.stderr)
    assert "Traceback" not in result.stderr
    backend = backend_for(tmp_path, small_data(fake, template=LVM_TEMPLATE))
    with pytest.raises(InputError, match="cannot make linked clones"):
        converge(backend)
    assert _writes(fake, start) == [], "nothing may be touched"


def test_a_full_clone_from_plain_lvm_to_an_lvmthin_storage_builds_the_site(fake, tmp_path):
    _on_plain_lvm(fake)
    fake.add_storage("thin-ssd", type="lvmthin", content="images")
    data = small_data(fake, template=LVM_TEMPLATE, full_clone=True, storage="thin-ssd")
    converge(backend_for(tmp_path, data))
    clones = [r for r in fake.requests if r.route == "/nodes/{node}/qemu/{vmid}/clone"]
    assert clones and all((r.params["full"], r.params["storage"], r.status) == ("1", "thin-ssd", 200) for r in clones)
    api = fake.client(token_name="tests-disks")
    vms = site_vms(fake, "pvflow")
    assert len(vms) == 3
    for vm in vms:
        assert api.nodes("pve1").qemu(vm["vmid"]).config.get()["scsi0"].startswith(f"thin-ssd:vm-{vm['vmid']}-disk-0")
    assert backend_for(tmp_path, data).plan().empty


@pytest.mark.parametrize(
    ("storage", "reason"),
    [
        ("nowhere", "is not available there"),
        ("off", "is disabled"),
        ("gone-nfs", "is not active"),
        ("local", "does not hold VM images (content: iso,vztmpl,backup,snippets)"),
        ("tiny", "has 3.0 GiB free; a full clone of template 9000 needs up to 8.0 GiB per VM"),
    ],
)
def test_the_target_storage_of_full_clones_must_be_able_to_hold_them(fake, tmp_path, storage, reason):
    fake.add_storage("local")
    fake.add_storage("off", type="lvmthin", content="images", disable=True)
    fake.add_storage("gone-nfs", type="nfs", content="images", active=False)
    fake.add_storage("tiny", type="lvmthin", content="images", total_gib=4, used_gib=1)
    backend = backend_for(tmp_path, small_data(fake, full_clone=True, storage=storage))
    start = len(fake.requests)
    with pytest.raises(InputError) as caught:
        backend.preflight()
    message = str(caught.value)
    assert f"backend.storage: the full clones go to storage '{storage}' on node pve1, which {reason}" in message
    assert message.endswith("allowed: local-lvm, tiny"), message
    assert _writes(fake, start) == []


def test_a_clone_refusal_that_cannot_change_is_tried_once_and_says_why(fake, tmp_path):
    """Past the preflight (another client changed the storage meanwhile), Proxmox's own refusal is final: one clone
    call, its text in the error, not 'kept failing after 6 attempts'."""
    _on_plain_lvm(fake)
    backend = backend_for(tmp_path, small_data(fake, template=LVM_TEMPLATE))
    with pytest.raises(PveError) as caught:
        backend.apply(backend.plan(), lambda message: None)  # no preflight
    assert "Linked clone feature is not supported for 'vg-data:base-9001-disk-0' (scsi0)" in str(caught.value)
    assert "attempts" not in str(caught.value)
    clones = [r for r in fake.requests if r.route == "/nodes/{node}/qemu/{vmid}/clone"]
    assert len(clones) == 1 and clones[0].status == 500
    assert site_vms(fake, "pvflow") == []


# -- item 8: HA-managed and migrated VMs -------------------------------------------------------------------------


def _vm_requests(fake: FakePve, start: int, vmid: int) -> list[tuple[str, str, str]]:
    """(method, route, node) of the requests on one VM since `start`, HA resource calls included."""
    found = []
    for r in fake.requests[start:]:
        if str(r.params.get("vmid")) == str(vmid) or str(r.params.get("sid")) == f"vm:{vmid}":
            found.append((r.method, r.route, str(r.params.get("node", ""))))
    return found


def _tasks(fake: FakePve, vmid: int, since: int) -> list[tuple[str, str]]:
    """(type, user) of the tasks run for a VM, in the order they were made, from the `since`-th task on."""
    tasks = sorted(fake.state.tasks.values(), key=lambda t: t.created)[since:]
    return [(t.type, t.user) for t in tasks if t.id == str(vmid)]


def test_an_update_of_an_ha_managed_vm_really_stops_it_through_the_ha_manager_and_starts_it_again(fake, tmp_path):
    """The `hastop` task ends while the VM still runs; starting it then would leave the new size pending (the VM
    never went down). The apply waits until the HA manager stopped it, then has it started, and waits again."""
    converge(backend_for(tmp_path, small_data(fake, shutdown_timeout=30)))
    vmid = flows._vmid(fake, "pvflow-dev-app1")
    fake.add_ha_resource(vmid, "started")
    start, first_task = len(fake.requests), len(fake.state.tasks)
    backend = backend_for(tmp_path, flows._resized(fake, shutdown_timeout=30))
    backend.apply(backend.plan(), lambda message: None)
    assert flows._power(fake, start, vmid) == [("shutdown", {"timeout": "30"}), ("start", {})]
    assert _tasks(fake, vmid, first_task)[-4:] == [
        ("hastop", "root@pam!provisioner"),
        ("qmshutdown", "root@pam"),  # the HA manager's own shutdown, after the request
        ("hastart", "root@pam!provisioner"),
        ("qmstart", "root@pam"),
    ]
    vm = fake.state.vms[vmid]
    assert vm.status == "running" and not vm.pending, vm.pending
    assert vm.config["cores"] == "2" and vm.config["memory"] == "2048"
    res = fake.state.ha[f"vm:{vmid}"]
    assert (res.state, res.crm_state) == ("started", "started")
    assert backend_for(tmp_path, flows._resized(fake, shutdown_timeout=30)).plan().empty


def test_removing_an_ha_managed_vm_stops_it_takes_it_out_of_ha_then_destroys_it(fake, tmp_path):
    converge(backend_for(tmp_path, small_data(fake, shutdown_timeout=30)))
    vmid = flows._vmid(fake, "pvflow-dev-app1")
    fake.add_ha_resource(vmid, "started")
    start = len(fake.requests)
    fewer = small_data(fake, shutdown_timeout=30)
    fewer["hosts"] = [h for h in fewer["hosts"] if h["name"] != "dev-app1"]
    backend = backend_for(tmp_path, fewer)
    backend.apply(backend.plan(), lambda message: None)
    writes = [(m, route) for m, route, _ in _vm_requests(fake, start, vmid) if m != "GET"]
    assert writes == [
        ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
        ("DELETE", "/cluster/ha/resources/{sid}"),
        ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ]
    refused = [r for r in fake.requests[start:] if r.status >= 400]
    assert refused == [], [(r.route, r.reason) for r in refused]
    assert vmid not in fake.state.vms and fake.state.ha == {}
    assert backend_for(tmp_path, fewer).plan().empty


@pytest.mark.parametrize("state", ["error", "migrate", "fence"])
def test_an_ha_managed_vm_in_a_state_the_apply_must_not_touch_is_refused_with_what_to_do(fake, tmp_path, state):
    converge(backend_for(tmp_path, small_data(fake)))
    vmid = flows._vmid(fake, "pvflow-dev-app1")
    fake.add_ha_resource(vmid, "started").crm_state = state
    start = len(fake.requests)
    backend = backend_for(tmp_path, flows._resized(fake))
    with pytest.raises(ProvisionError) as caught:
        backend.apply(backend.plan(), lambda message: None)
    assert f"VM {vmid} is HA-managed and in HA state '{state}', so the apply will not stop it" in str(caught.value)
    if state == "error":
        assert f"ha-manager set vm:{vmid} --state disabled" in str(caught.value)
    assert flows._power(fake, start, vmid) == [], "the VM is left as it is"
    assert fake.state.vms[vmid].status == "running"


def test_a_vm_migrated_to_another_node_is_updated_on_that_node(fake, tmp_path):
    fake.add_node("pve2")
    converge(backend_for(tmp_path, small_data(fake)))
    vmid = flows._vmid(fake, "pvflow-dev-app1")
    fake.move_vm(vmid, "pve2")
    start, first_task = len(fake.requests), len(fake.state.tasks)
    backend = backend_for(tmp_path, flows._resized(fake))
    backend.apply(backend.plan(), lambda message: None)
    calls = [r for r in fake.requests[start:] if r.route.startswith("/nodes/{node}/qemu/{vmid}")]
    on_vm = [r for r in calls if int(r.params["vmid"]) == vmid]
    assert {"PUT", "POST"} <= {r.method for r in on_vm}
    assert {r.params["node"] for r in on_vm} == {"pve2"}
    assert all(r.status == 200 for r in on_vm), [(r.route, r.reason) for r in on_vm if r.status != 200]
    vm = fake.state.vms[vmid]
    assert (vm.node, vm.status, vm.config["memory"]) == ("pve2", "running", "2048")
    tasks = sorted(fake.state.tasks.values(), key=lambda t: t.created)[first_task:]
    assert [(t.type, t.node) for t in tasks if t.id == str(vmid) and t.type != "qmconfig"] == [
        ("qmshutdown", "pve2"),
        ("qmstart", "pve2"),
    ]
    assert backend_for(tmp_path, flows._resized(fake)).plan().empty
