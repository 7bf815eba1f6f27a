"""The PVE fake (tests/fakes/pvefake) driven by real proxmoxer over HTTPS: PVE semantics, not mocks.

Fast (no LXC). Schema-dependent checks skip with a reason when ../shared/pve-api is absent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

proxmoxer = pytest.importorskip("proxmoxer", reason="proxmoxer (the 'proxmox' extra) is not installed")
from proxmoxer import ProxmoxAPI, ResourceException  # noqa: E402
from proxmoxer.tools import Tasks  # noqa: E402
from pvefake import FakePve, Faults, NullRealizer, Schema, check_recording, quiet_insecure_warnings  # noqa: E402
from pvefake.realize import fake_ed25519_public_key  # noqa: E402
from urllib3.exceptions import InsecureRequestWarning  # noqa: E402

SCHEMA_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "pve-api"
HAVE_SCHEMA = (SCHEMA_DIR / "pve-api-9.1.flat.json").is_file() and (SCHEMA_DIR / "pve-api-8.4.flat.json").is_file()
needs_schema = pytest.mark.skipif(not HAVE_SCHEMA, reason=f"PVE API schema not found at {SCHEMA_DIR.resolve()}")
NODE = "pve1"
UPID_RE = re.compile(
    r"^UPID:[a-zA-Z0-9][a-zA-Z0-9\-]*:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[^:\s/]+:[^:\s/]*:[^:\s/]+:$"
)
SSH_KEY = fake_ed25519_public_key("test") + " admin@example.org: laptop"


@pytest.fixture
def fake() -> Iterator[FakePve]:
    pve = FakePve(schema_version="9.1", node=NODE, task_seconds=0.05, faults=Faults(seed=1))
    pve.add_storage("local")
    pve.add_storage("local-lvm")
    pve.add_bridge("vmbr0")
    pve.add_template(9000, name="debian12-cloud")
    pve.start()
    yield pve
    pve.stop()


def client(fake: FakePve, user: str = "root@pam", token: str = "provisioner", privsep: bool = False) -> Any:
    secret = fake.add_token(user, token, privsep=privsep)
    api = ProxmoxAPI(fake.host, port=fake.port, user=user, token_name=token, token_value=secret, verify_ssl=False)
    return quiet_insecure_warnings(api)


@pytest.fixture
def api(fake: FakePve) -> Any:
    return client(fake)


def wait(api: Any, upid: str) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, timeout=10, polling_interval=0.02)
    assert status is not None, f"task {upid} did not finish"
    return status


def failure(call: Any, *args: Any, **kwargs: Any) -> ResourceException:
    with pytest.raises(ResourceException) as caught:
        call(*args, **kwargs)
    return caught.value


def clone(api: Any, newid: int, **kw: Any) -> dict[str, Any]:
    return wait(api, api.nodes(NODE).qemu(9000).clone.post(newid=newid, **kw))


# -- wire protocol ----------------------------------------------------------------------------------


@needs_schema
def test_boolean_true_is_rejected_with_the_pve_text(fake: FakePve, api: Any) -> None:
    err = failure(api.nodes(NODE).qemu(9000).clone.post, newid=101, full=True)
    assert err.status_code == 400
    assert err.content == "Parameter verification failed."
    assert err.errors == {"full": "type check ('boolean') failed - got 'True'"}
    assert 101 not in fake.state.vms  # an invalid request has no effect


@needs_schema
def test_unknown_and_missing_parameters(api: Any) -> None:
    err = failure(api.nodes(NODE).qemu(9000).clone.post, newid=101, colour="blue")
    assert err.errors == {
        "colour": "property is not defined in schema and the schema does not allow additional properties"
    }
    err = failure(api.nodes(NODE).qemu(9000).clone.post)
    assert err.errors == {"newid": "property is missing and it is not optional"}
    err = failure(api.nodes(NODE).qemu(9000).config.put, cores=0)
    assert err.errors == {"cores": "value must have a minimum value of 1"}


def test_missing_object_is_500_with_reason_phrase(api: Any) -> None:
    err = failure(api.nodes(NODE).qemu(555).config.get)
    assert err.status_code == 500
    assert err.content == f"Configuration file 'nodes/{NODE}/qemu-server/555.conf' does not exist"
    assert "does not exist" in str(err)


def test_unknown_route_is_501(fake: FakePve, api: Any) -> None:
    err = failure(api.nodes(NODE).qemu(9000).frobnicate.get)
    assert err.status_code == 501
    assert err.content == f"Method 'GET /nodes/{NODE}/qemu/9000/frobnicate' not implemented"
    assert failure(api.cluster.nonsense.get).status_code == 501


def test_unauthenticated_and_bad_token_get_401(fake: FakePve) -> None:
    assert fake.raw("GET", "/version").status_code == 401
    bad = fake.raw("GET", "/version", token=("root@pam", "provisioner", "wrong"))
    assert (bad.status_code, bad.reason, bad.content) == (401, "Authentication failed!", b"")
    secret = fake.add_token("root@pam", "provisioner")
    ok = fake.raw("GET", "/version", token=("root@pam", "provisioner", secret))
    assert ok.json()["data"]["release"] == "9.1"


def test_ticket_login_needs_csrf_on_writes(fake: FakePve) -> None:
    fake.add_user("ops@pve", password="s3cret-pass")
    fake.add_acl("/", "Administrator", user="ops@pve")
    with warnings.catch_warnings():  # proxmoxer logs in with a bare requests.post, outside our session
        warnings.simplefilter("ignore", InsecureRequestWarning)
        api = ProxmoxAPI(fake.host, port=fake.port, user="ops@pve", password="s3cret-pass", verify_ssl=False)
        with pytest.raises(proxmoxer.AuthenticationError):
            ProxmoxAPI(fake.host, port=fake.port, user="ops@pve", password="nope", verify_ssl=False)
    quiet_insecure_warnings(api).pools.post(poolid="ops")
    assert "ops" in fake.state.pools
    ticket, _csrf = api.get_tokens()
    no_csrf = fake.raw("POST", "/pools", data={"poolid": "x"}, headers={"Cookie": f"PVEAuthCookie={ticket}"})
    assert (no_csrf.status_code, no_csrf.reason) == (401, "Permission denied - invalid csrf token")


def test_conflicting_path_and_body_values(fake: FakePve) -> None:
    secret = fake.add_token("root@pam", "provisioner")
    resp = fake.raw(
        "PUT", "/nodes/pve1/qemu/9000/config", data={"vmid": "9001"}, token=("root@pam", "provisioner", secret)
    )
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"vmid": "duplicate parameter (already defined in URI) with conflicting values!"}


def test_error_body_carries_message(fake: FakePve) -> None:
    secret = fake.add_token("root@pam", "provisioner")
    resp = fake.raw("GET", "/nodes/pve1/qemu/555/config", token=("root@pam", "provisioner", secret))
    assert resp.json() == {
        "data": None,
        "message": f"Configuration file 'nodes/{NODE}/qemu-server/555.conf' does not exist\n",
    }


# -- tasks, nextid, resources -----------------------------------------------------------------------


def test_nextid_is_a_string_and_does_not_reserve(fake: FakePve, api: Any) -> None:
    first = api.cluster.nextid.get()
    assert first == "100"
    assert api.cluster.nextid.get() == "100"  # not reserved
    clone(api, 100)
    assert api.cluster.nextid.get() == "101"
    assert api.cluster.nextid.get(vmid=150) == "150"
    err = failure(api.cluster.nextid.get, vmid=100)
    assert (err.status_code, err.errors) == (400, {"vmid": "VM 100 already exists"})
    # the loser of a nextid race gets the clone refused synchronously
    err = failure(api.nodes(NODE).qemu(9000).clone.post, newid=100)
    assert err.content == "unable to create VM 100: config file already exists"


def test_task_upid_status_and_log(fake: FakePve, api: Any) -> None:
    fake.task_seconds = 0.5  # long enough to observe the running task
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=120, name="web")
    assert UPID_RE.match(upid), upid
    assert upid.split(":")[5:8] == ["qmclone", "9000", "root@pam!provisioner"]
    assert Tasks.decode_upid(upid)["type"] == "qmclone"
    assert api.nodes(NODE).tasks(upid).status.get()["status"] == "running"
    status = wait(api, upid)
    assert (status["exitstatus"], status["user"], status["tokenid"]) == ("OK", "root@pam", "provisioner")
    log = api.nodes(NODE).tasks(upid).log.get()
    assert log[-1] == {"n": len(log), "t": "TASK OK"}
    bogus = upid.replace(upid.split(":")[2], "0000BEEF")
    assert failure(api.nodes(NODE).tasks(bogus).status.get).errors == {"upid": "no such task"}
    assert failure(api.nodes(NODE).tasks("garbage").status.get).errors == {"upid": "unable to parse worker upid"}
    listed = api.nodes(NODE).tasks.get(typefilter="qmclone")
    assert [t["upid"] for t in listed] == [upid] and listed[0]["status"] == "OK"


def test_cluster_resources(fake: FakePve, api: Any) -> None:
    api.pools.post(poolid="dev")
    clone(api, 101, name="app1", pool="dev")
    api.nodes(NODE).qemu(101).config.put(tags="web,dev", memory=4096)
    fake.task_seconds = 0.5  # long enough to observe the clone's lock
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=102)
    vms = {r["id"]: r for r in api.cluster.resources.get(type="vm")}
    assert set(vms) == {"qemu/101", "qemu/102", "qemu/9000"}
    app = vms["qemu/101"]
    assert (app["type"], app["vmid"], app["name"], app["node"], app["status"]) == ("qemu", 101, "app1", NODE, "stopped")
    assert (app["tags"], app["pool"], app["template"], app["maxmem"], app["maxcpu"]) == (
        "dev;web",
        "dev",
        0,
        4096 << 20,
        2,
    )
    assert vms["qemu/102"]["lock"] == "clone" and vms["qemu/9000"]["template"] == 1
    wait(api, upid)
    everything = api.cluster.resources.get()
    assert {"node", "qemu", "storage", "pool"} <= {r["type"] for r in everything}


# -- QEMU -------------------------------------------------------------------------------------------


def test_clone_lock_window_and_new_identity(fake: FakePve, api: Any) -> None:
    fake.task_seconds = 0.4
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=101, name="web1")
    assert api.nodes(NODE).qemu(101).config.get()["lock"] == "clone"  # exists at once, locked
    err = failure(api.nodes(NODE).qemu(101).config.put, cores=4)
    assert (err.status_code, err.content) == (500, "VM is locked (clone)")
    assert failure(api.nodes(NODE).qemu(101).config.post, cores=4).content == "VM is locked (clone)"
    assert wait(api, upid)["exitstatus"] == "OK"
    api.nodes(NODE).qemu(101).config.put(cores=4)
    config = api.nodes(NODE).qemu(101).config.get()
    template = api.nodes(NODE).qemu(9000).config.get()
    assert "lock" not in config and "template" not in config
    assert config["name"] == "web1" and config["cores"] == 4
    assert config["net0"] != template["net0"] and config["net0"].endswith(",bridge=vmbr0")
    assert config["scsi0"].startswith("local-lvm:base-9000-disk-0/vm-101-disk-0")  # linked by default
    clone(api, 102)
    assert api.nodes(NODE).qemu(102).config.get()["name"] == "Copy-of-VM-debian12-cloud"


def test_linked_clone_refuses_storage_and_missing_pool(api: Any) -> None:
    err = failure(api.nodes(NODE).qemu(9000).clone.post, newid=101, storage="local-lvm")
    assert err.content == "parameter 'storage' not allowed for linked clones"
    assert clone(api, 101, full=1, storage="local-lvm")["exitstatus"] == "OK"
    assert (
        failure(api.nodes(NODE).qemu(9000).clone.post, newid=102, pool="nope").content == "pool 'nope' does not exist"
    )
    assert failure(api.nodes(NODE).qemu(777).clone.post, newid=103).status_code == 500


def test_config_digest_delete_tags_and_cloudinit(fake: FakePve, api: Any) -> None:
    clone(api, 101)
    vm = api.nodes(NODE).qemu(101)
    digest = vm.config.get()["digest"]
    vm.config.put(ciuser="debian", cipassword="hunter22", tags="b;a,b", ipconfig0="ip=10.0.0.5/24,gw=10.0.0.1")
    err = failure(vm.config.put, cores=2, digest=digest)
    assert err.content == "checksum mismatch (file change by other user?)"
    config = vm.config.get()
    assert config["cipassword"] == "**********" and config["tags"] == "a;b"
    vm.config.put(delete="tags,description")
    assert "tags" not in vm.config.get()
    assert failure(vm.config.put).content == "no options specified"
    vm.cloudinit.put()
    dump = vm.cloudinit.dump.get(type="network")
    assert "address: '10.0.0.5/24'" in dump and "gateway: '10.0.0.1'" in dump


def test_post_config_is_async(fake: FakePve, api: Any) -> None:
    clone(api, 101)
    vm = api.nodes(NODE).qemu(101)
    upid = vm.config.post(memory=3072)
    assert UPID_RE.match(upid)
    assert vm.config.get()["memory"] == "3072"  # pending values show by default
    assert wait(api, upid)["exitstatus"] == "OK"
    assert vm.config.get(current=1)["memory"] == "3072"
    assert vm.config.post(memory=3072) is None  # nothing to change: no worker


@needs_schema
def test_sshkeys_must_be_urlencoded(fake: FakePve, api: Any) -> None:
    clone(api, 101)
    vm = api.nodes(NODE).qemu(101)
    vm.config.put(sshkeys=quote(SSH_KEY, safe=""))
    assert vm.config.get()["sshkeys"] == quote(SSH_KEY, safe="")  # stored URL-encoded
    err = failure(vm.config.put, sshkeys=SSH_KEY)
    assert err.status_code == 400
    assert err.errors["sshkeys"] == f"invalid format - invalid urlencoded string: {SSH_KEY}\n"
    err = failure(vm.config.put, sshkeys=quote("ssh-ed25519 not-base64 x", safe=""))
    assert (err.status_code, err.content) == (500, "SSH public key validation error")


def test_start_stop_and_worker_failures(fake: FakePve, api: Any) -> None:
    started = wait(api, api.nodes(NODE).qemu(9000).status.start.post())
    assert started["exitstatus"] == "you can't start a vm if it's a template"  # POST said 200
    clone(api, 101)
    vm = api.nodes(NODE).qemu(101)
    assert wait(api, vm.status.start.post())["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "running"
    assert wait(api, vm.status.start.post())["exitstatus"] == "VM 101 already running"
    assert vm.agent.ping.post() == {"result": {}}
    key = vm.agent("file-read").get(file="/etc/ssh/ssh_host_ed25519_key.pub")["content"]
    assert key.startswith("ssh-ed25519 AAAA") and key.rstrip().endswith("root@Copy-of-VM-debian12-cloud")
    assert "Agent error" in failure(vm.agent("file-read").get, file="/etc/shadow").content
    err = failure(api.nodes(NODE).qemu(101).delete)
    assert err.content == "VM 101 is running - destroy failed"
    assert wait(api, vm.status.shutdown.post())["exitstatus"] == "OK"
    assert failure(vm.agent.ping.post).content == "VM 101 is not running"
    vm.config.put(net0="virtio,bridge=vmbr9")
    assert wait(api, vm.status.start.post())["exitstatus"] == "bridge 'vmbr9' does not exist"


def test_protection_refuses_destroy(fake: FakePve, api: Any) -> None:
    clone(api, 101)
    api.nodes(NODE).qemu(101).config.put(protection=1)
    err = failure(api.nodes(NODE).qemu(101).delete)
    assert (err.status_code, err.content) == (500, "can't remove VM 101 - protection mode enabled")
    api.nodes(NODE).qemu(101).config.put(delete="protection")
    assert (
        wait(api, api.nodes(NODE).qemu(101).delete(purge=1, **{"destroy-unreferenced-disks": 1}))["exitstatus"] == "OK"
    )
    assert 101 not in fake.state.vms


# -- storage capability, HA, guests on other nodes (issue 19, items 10 and 8) ----------------------------------


@pytest.mark.parametrize(
    ("kind", "volname", "linked"),
    [
        ("lvmthin", "base-9000-disk-0", True),
        ("zfspool", "base-9000-disk-0", True),
        ("rbd", "base-9000-disk-0", True),
        ("dir", "9000/base-9000-disk-0.qcow2", True),
        ("nfs", "9000/base-9000-disk-0.raw", True),  # Plugin.pm: a qcow2 overlay on a raw base file
        ("lvm", "base-9000-disk-0", False),
        ("iscsi", "0.0.1.scsi-36001405aa", False),
        ("iscsidirect", "0.0.1.scsi-36001405aa", False),
        ("dir", "9000/vm-9000-disk-0.qcow2", False),  # not a base volume
    ],
)
def test_which_storages_make_linked_clones(kind: str, volname: str, linked: bool) -> None:
    from pvefake.storage_model import has_feature

    assert has_feature(kind, "clone", volname) is linked


def test_a_linked_clone_needs_a_storage_that_can_clone(fake: FakePve, api: Any) -> None:
    fake.add_storage("vg-data", type="lvm", content="images,rootdir")
    fake.add_storage("nas", type="nfs", content="images")
    fake.add_storage("off", type="lvmthin", content="images", disable=True)
    fake.add_template(9001, name="on-lvm", storage="vg-data")
    fake.add_template(9002, name="on-nfs", storage="nas")
    err = failure(api.nodes(NODE).qemu(9001).clone.post, newid=101)
    assert (err.status_code, err.content) == (
        500,
        "Linked clone feature is not supported for 'vg-data:base-9001-disk-0' (scsi0)",
    )
    assert 101 not in fake.state.vms and not [t for t in fake.state.tasks.values() if t.type == "qmclone"]
    assert clone(api, 101, full=1, storage="local-lvm")["exitstatus"] == "OK"
    config = api.nodes(NODE).qemu(101).config.get()
    assert config["scsi0"].startswith("local-lvm:vm-101-disk-0,") and config["ide2"].startswith(
        "local-lvm:vm-101-cloudinit"
    )
    assert clone(api, 102)["exitstatus"] == "OK"  # lvmthin: linked
    linked = api.nodes(NODE).qemu(9002).clone.post(newid=104)
    assert wait(api, linked)["exitstatus"] == "OK"
    assert (
        api.nodes(NODE)
        .qemu(104)
        .config.get()["scsi0"]
        .startswith("nas:9002/base-9002-disk-0.qcow2/104/vm-104-disk-0.qcow2,")
    )
    err = failure(api.nodes(NODE).qemu(9001).clone.post, newid=105, full=1, storage="local")
    assert (err.status_code, err.errors) == (400, {"storage": "storage 'local' does not support vm images"})
    err = failure(api.nodes(NODE).qemu(9001).clone.post, newid=105, full=1, storage="off")
    assert err.content == "storage 'off' is disabled"
    listed = {s["storage"]: s for s in api.nodes(NODE).storage.get()}
    assert (listed["off"]["enabled"], listed["off"]["active"], listed["off"]["avail"]) == (0, 0, 0)
    assert listed["vg-data"]["type"] == "lvm" and listed["vg-data"]["avail"] == 490 << 30
    assert "off" not in {s["storage"] for s in api.nodes(NODE).storage.get(content="images")}


def _settle(fake: FakePve) -> None:
    assert fake.wait_tasks(10), "the HA manager's tasks did not end"


def test_ha_start_and_stop_are_requests_carried_out_after_their_task_ended(fake: FakePve, api: Any) -> None:
    fake.api.ha_seconds = 0.4
    clone(api, 101)
    api.cluster.ha.resources.post(sid="vm:101", state="stopped")
    vm = api.nodes(NODE).qemu(101)
    assert vm.status.current.get()["ha"] == {"managed": 1, "state": "stopped"}
    upid = vm.status.start.post()
    assert ":hastart:101:" in upid
    assert wait(api, upid)["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "stopped", "the task ended before the HA manager acted"
    _settle(fake)
    assert vm.status.current.get()["status"] == "running"
    assert api.cluster.ha.resources("vm:101").get()["state"] == "started"
    assert {r["vmid"]: r.get("hastate") for r in api.cluster.resources.get(type="vm")}[101] == "started"
    upid = vm.status.shutdown.post(timeout=30)
    assert ":hastop:101:" in upid and wait(api, upid)["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "running"
    assert vm.status.current.get()["ha"] == {"managed": 1, "state": "request_stop"}
    _settle(fake)
    assert vm.status.current.get()["status"] == "stopped"
    assert api.cluster.ha.resources.get() == [{"sid": "vm:101", "type": "vm", "state": "stopped", "digest": "0" * 40}]
    # a stop request overtaken by a start request leaves the VM running: nothing was stopped
    wait(api, vm.status.start.post())
    _settle(fake)
    wait(api, vm.status.stop.post())
    wait(api, vm.status.start.post())
    _settle(fake)
    assert vm.status.current.get()["status"] == "running"
    lrm = [t.type for t in fake.state.tasks.values() if t.user == "root@pam" and t.id == "101"]
    assert lrm.count("qmstop") == 1 and lrm.count("qmstart") == 2


def test_destroying_an_ha_vm_needs_purge_and_a_stopped_vm(fake: FakePve, api: Any) -> None:
    clone(api, 101)
    fake.add_ha_resource(101, "started")
    vm = api.nodes(NODE).qemu(101)
    err = failure(vm.delete)
    assert err.content == "unable to remove VM 101 - used in HA resources and purge parameter not set."
    assert failure(vm.delete, purge=1).content == "VM 101 is running - destroy failed"
    wait(api, vm.status.stop.post())
    _settle(fake)
    assert wait(api, vm.delete(purge=1))["exitstatus"] == "OK"
    assert 101 not in fake.state.vms and fake.state.ha == {}
    log = [line["t"] for line in api.nodes(NODE).tasks(_last_upid(fake, "qmdestroy")).log.get()]
    assert "NOTE: removed VM 101 from HA resource configuration." in log


def _last_upid(fake: FakePve, kind: str) -> str:
    return max((t for t in fake.state.tasks.values() if t.type == kind), key=lambda t: t.created).upid


def test_ha_resources_are_refused_as_pve_ha_manager_refuses_them(fake: FakePve, api: Any) -> None:
    assert failure(api.cluster.ha.resources.post, sid="vm:999").content == "resource 'vm:999' does not exist in cluster"
    assert failure(api.cluster.ha.resources.post, sid="999").content == (
        "unable to detect SID from VMID - VM/CT 999 does not exist"
    )
    clone(api, 101)
    api.cluster.ha.resources.post(sid="101", state="stopped")
    assert failure(api.cluster.ha.resources.post, sid="vm:101").content == "resource ID 'vm:101' already defined"
    fake.state.ha["vm:101"].crm_state = "error"
    err = failure(api.cluster.ha.resources("vm:101").put, state="started")
    assert err.content == "service 'vm:101' in error state, must be disabled and fixed first"
    api.cluster.ha.resources("vm:101").put(state="disabled")
    api.cluster.ha.resources("vm:101").delete()
    assert (
        failure(api.cluster.ha.resources("vm:101").delete).content == "cannot delete service 'vm:101', not HA managed!"
    )
    assert failure(api.cluster.ha.resources("vm:101").get).content == "no such resource 'vm:101'"


def test_a_migrated_vm_is_driven_on_its_node_and_its_tasks_are_found_there(fake: FakePve, api: Any) -> None:
    fake.add_node("pve2")
    clone(api, 101)
    fake.move_vm(101, "pve2")
    err = failure(api.nodes(NODE).qemu(101).status.start.post)
    assert err.content == f"Configuration file 'nodes/{NODE}/qemu-server/101.conf' does not exist"
    api.nodes("pve2").qemu(101).config.put(cores=2)
    upid = api.nodes("pve2").qemu(101).status.start.post()
    assert upid.startswith("UPID:pve2:")
    assert failure(api.nodes(NODE).tasks(upid).status.get).status_code == 400, "a task is found on its own node"
    assert wait(api, upid)["exitstatus"] == "OK"
    assert api.nodes("pve2").qemu(101).status.current.get()["status"] == "running"
    assert {r["vmid"]: r["node"] for r in api.cluster.resources.get(type="vm")}[101] == "pve2"


# -- containers, node interfaces, other cluster members ---------------------------------------------


def test_containers_are_listed_and_read_as_pct_leaves_them(fake: FakePve, api: Any) -> None:
    fake.add_lxc(106, "office-db", {0: "name=eth0,bridge=vmbr0,ip=dhcp,tag=30"}, status="running")
    assert [(c["vmid"], c["name"], c["status"]) for c in api.nodes(NODE).lxc.get()] == [(106, "office-db", "running")]
    config = api.nodes(NODE).lxc(106).config.get()
    assert (config["hostname"], config["memory"], config["unprivileged"]) == ("office-db", 512, 1)
    assert re.fullmatch(r"name=eth0,bridge=vmbr0,ip=dhcp,tag=30,hwaddr=BC:24:11(:[0-9A-F]{2}){3}", config["net0"])
    assert re.fullmatch(r"[0-9a-f]{40}", config["digest"])
    resources = {r["id"]: r for r in api.cluster.resources.get(type="vm")}
    assert (resources["lxc/106"]["type"], resources["lxc/106"]["node"]) == ("lxc", NODE)
    assert [vm["vmid"] for vm in api.nodes(NODE).qemu.get()] == [9000], "a container is not a VM"
    # VMIDs are cluster-wide
    assert api.cluster.nextid.get() == "100"
    fake.add_vm(100, {"name": "x"})
    assert api.cluster.nextid.get() == "101"
    fake.add_lxc(101, "y")
    assert api.cluster.nextid.get() == "102"
    assert "already exists" in failure(api.nodes(NODE).qemu(9000).clone.post, newid=106).content
    err = failure(api.nodes(NODE).lxc(555).config.get)
    assert (err.status_code, err.content) == (500, f"Configuration file 'nodes/{NODE}/lxc/555.conf' does not exist")
    with pytest.raises(ValueError, match="maximum value of 4094"):
        fake.add_lxc(107, "bad", {0: "name=eth0,bridge=vmbr0,tag=5000"})


def test_node_vlan_interfaces_are_listed_as_pve_parses_them(fake: FakePve, api: Any) -> None:
    fake.add_vlan_interface("vmbr0.30")
    fake.add_vlan_interface("vlan31", raw_device="eno1")
    fake.add_vlan_interface("office", raw_device="vmbr0", vlan_id=32)
    with pytest.raises(ValueError, match="missing vlan-id option"):
        fake.add_vlan_interface("custom", raw_device="vmbr0")
    with pytest.raises(ValueError, match="missing vlan-raw-device option"):
        fake.add_vlan_interface("vlan33")
    vlans = {n["iface"]: (n["vlan-raw-device"], n["vlan-id"]) for n in api.nodes(NODE).network.get(type="vlan")}
    assert vlans == {"vmbr0.30": ("vmbr0", 30), "vlan31": ("eno1", 31), "office": ("vmbr0", 32)}
    assert {n["type"] for n in api.nodes(NODE).network.get()} == {"bridge", "vlan"}
    assert {n["iface"] for n in api.nodes(NODE).network.get(type="bridge")} == {"vmbr0"}


def test_other_cluster_members_answer_for_their_own_network_and_guests(fake: FakePve, api: Any) -> None:
    fake.add_node("pve2")
    fake.add_node("pve3", status="offline")
    fake.add_vm(205, {"name": "backup", "net0": "virtio=BC:24:11:00:00:05,bridge=vmbr0,tag=30"}, node="pve2")
    fake.add_lxc(206, "cache", node="pve2")
    fake.add_vlan_interface("vmbr0.40", node="pve2")
    nodes = {n["node"]: n for n in api.nodes.get()}
    assert {n: e["status"] for n, e in nodes.items()} == {NODE: "online", "pve2": "online", "pve3": "offline"}
    assert "maxmem" not in nodes["pve3"], "a node that is not online has no statistics"
    assert [vm["vmid"] for vm in api.nodes("pve2").qemu.get()] == [205]
    assert 205 not in [vm["vmid"] for vm in api.nodes(NODE).qemu.get()]
    assert [ct["vmid"] for ct in api.nodes("pve2").lxc.get()] == [206]
    assert api.nodes("pve2").qemu(205).config.get()["name"] == "backup"
    assert [n["iface"] for n in api.nodes("pve2").network.get(type="vlan")] == ["vmbr0.40"]
    assert api.nodes(NODE).network.get(type="vlan") == []
    err = failure(api.nodes(NODE).qemu(205).config.get)  # its config file lives under nodes/pve2/
    assert err.content == f"Configuration file 'nodes/{NODE}/qemu-server/205.conf' does not exist"
    assert failure(api.nodes("pve2").qemu(9000).config.get).status_code == 500
    resources = {r["id"]: r["node"] for r in api.cluster.resources.get(type="vm")}
    assert (resources["qemu/205"], resources["lxc/206"]) == ("pve2", "pve2")
    offline = failure(api.nodes("pve3").qemu.get)
    assert (offline.status_code, offline.content) == (595, "No route to host")
    assert failure(api.nodes("pve2").storage.get).status_code == 501
    assert failure(api.nodes("pve9").qemu.get).content == "no such cluster node 'pve9'"


# -- SDN --------------------------------------------------------------------------------------------


def test_sdn_is_pending_until_applied(fake: FakePve, api: Any) -> None:
    sdn = api.cluster.sdn
    sdn.zones.post(zone="devzone", type="vlan", bridge="vmbr0")
    sdn.vnets.post(vnet="devnet", zone="devzone", tag=20)
    assert sdn.vnets.get(running=1) == []
    pending = sdn.vnets.get(pending=1)[0]
    assert pending["state"] == "new" and pending["pending"]["tag"] == "20" and pending["vnet"] == "devnet"
    clone(api, 101)
    vm = api.nodes(NODE).qemu(101)
    vm.config.put(net0="virtio,bridge=devnet,firewall=1")
    assert wait(api, vm.status.start.post())["exitstatus"] == "bridge 'devnet' does not exist"
    upid = sdn.put()
    assert upid.split(":")[5:8] == ["reloadnetworkall", "", "root@pam!provisioner"]
    assert [v["vnet"] for v in sdn.vnets.get(running=1)] == ["devnet"]  # committed before the worker ran
    assert wait(api, upid)["exitstatus"] == "OK"
    assert isinstance(fake.realizer, NullRealizer)
    assert fake.realizer.applied_vnets["devnet"].tag == 20
    assert wait(api, vm.status.start.post())["exitstatus"] == "OK"
    sdn.vnets("devnet").put(alias="changed")
    assert sdn.vnets.get(pending=1)[0]["state"] == "changed"


def test_sdn_validation(api: Any) -> None:
    sdn = api.cluster.sdn
    sdn.zones.post(zone="devzone", type="vlan", bridge="vmbr0")
    err = failure(sdn.zones.post, zone="devzone", type="vlan", bridge="vmbr0")
    assert err.content == "create sdn zone object failed: sdn zone object ID 'devzone' already defined"
    assert failure(sdn.zones.post, zone="nobr", type="vlan").errors == {
        "bridge": "property is missing and it is not optional"
    }
    assert failure(sdn.vnets.post, vnet="devnet", zone="devzone").errors == {"tag": "missing vlan tag"}
    sdn.vnets.post(vnet="devnet", zone="devzone", tag=20)
    assert failure(sdn.vnets.post, vnet="other", zone="devzone", tag=20).errors == {
        "tag": "tag 20 already exist in vnet devnet"
    }
    assert failure(sdn.vnets.post, vnet="big", zone="devzone", tag=5000).errors == {"tag": "vlan tag max value is 4096"}
    err = failure(sdn.zones("devzone").delete)
    assert err.content == "delete sdn zone object failed: zone devzone is used by vnet devnet"


@needs_schema
def test_sdn_ids_are_short(api: Any) -> None:
    err = failure(api.cluster.sdn.zones.post, zone="toolongzone", type="simple")
    assert err.errors == {"zone": "invalid format - zone ID 'toolongzone' can't be more length than 8 characters\n"}


def test_subnet_ids_are_mangled(fake: FakePve, api: Any) -> None:
    sdn = api.cluster.sdn
    sdn.zones.post(zone="devzone", type="vlan", bridge="vmbr0")
    sdn.vnets.post(vnet="devnet", zone="devzone", tag=20)
    sdn.vnets("devnet").subnets.post(subnet="10.20.0.0/24", type="subnet", gateway="10.20.0.1")
    subnets = sdn.vnets("devnet").subnets.get()
    assert [s["subnet"] for s in subnets] == ["devzone-10.20.0.0-24"]
    assert sdn.vnets("devnet").subnets("devzone-10.20.0.0-24").get()["gateway"] == "10.20.0.1"
    assert failure(sdn.vnets("devnet").delete).errors == {"vnet": "Can't delete vnet if subnets exists"}
    sdn.vnets("devnet").subnets("devzone-10.20.0.0-24").delete()
    sdn.vnets("devnet").delete()


def test_vm_vlan_on_vnet_fails_start(fake: FakePve, api: Any) -> None:
    sdn = api.cluster.sdn
    sdn.zones.post(zone="devzone", type="vlan", bridge="vmbr0")
    sdn.vnets.post(vnet="devnet", zone="devzone", tag=20)
    wait(api, sdn.put())
    clone(api, 101)
    api.nodes(NODE).qemu(101).config.put(net0="virtio,bridge=devnet,tag=30")
    assert (
        wait(api, api.nodes(NODE).qemu(101).status.start.post())["exitstatus"]
        == "vm vlans are not allowed on vnet devnet"
    )


@needs_schema
def test_sdn_global_lock_is_9x_only(fake: FakePve, api: Any) -> None:
    token = api.cluster.sdn.lock.post()
    err = failure(api.cluster.sdn.zones.post, zone="z1", type="simple")
    assert err.content.startswith("create sdn zone object failed: invalid lock token provided!")
    api.cluster.sdn.zones.post(zone="z1", type="simple", **{"lock-token": token})
    wait(api, api.cluster.sdn.put(**{"lock-token": token, "release-lock": 1}))
    assert fake.state.sdn.lock_token is None
    old = FakePve(schema_version="8.4", task_seconds=0.05).start()
    try:
        err = failure(client(old).cluster.sdn.put, **{"lock-token": "x"})
        assert err.status_code == 400 and "lock-token" in err.errors
    finally:
        old.stop()


# -- pools, access, firewall ------------------------------------------------------------------------


def test_pools(fake: FakePve, api: Any) -> None:
    api.pools.post(poolid="dev", comment="developers")
    assert failure(api.pools.post, poolid="dev").content == "create pool failed: pool 'dev' already exists"
    clone(api, 101, pool="dev")
    members = api.pools.get(poolid="dev")[0]["members"]
    assert [m["vmid"] for m in members] == [101]
    err = failure(api.pools.delete, poolid="dev")
    assert err.content == "delete pool failed: pool 'dev' is not empty (contains VM 101)"
    api.pools.post(poolid="test")
    err = failure(api.pools.put, poolid="test", vms="101")
    assert err.content == "update pools failed: VM 101 belongs already to pool 'dev' and 'allow-move' is not set"
    api.pools.put(poolid="test", vms="101", **{"allow-move": 1})
    assert fake.state.pool_of(101) == "test"
    api.pools.delete(poolid="dev")
    assert api.pools("test").get()["members"][0]["id"] == "qemu/101"  # deprecated route


def test_acl_paths_roles_and_groups(fake: FakePve, api: Any) -> None:
    api.access.groups.post(groupid="developers", comment="devs")
    api.access.users.post(userid="alice@pve", groups="developers")
    assert api.access.groups("developers").get()["members"] == ["alice@pve"]
    err = failure(api.access.acl.put, path="/bogus", roles="PVEVMUser", groups="developers")
    assert (err.status_code, err.errors) == (400, {"path": "invalid ACL path '/bogus'"})
    err = failure(api.access.acl.put, path="/pool/dev", roles="Nope", groups="developers")
    assert err.content == "ACL update failed: role 'Nope' does not exist"
    err = failure(api.access.acl.put, path="/pool/dev", roles="PVEVMUser", groups="ghosts")
    assert err.content == "ACL update failed: group 'ghosts' does not exist"
    for _ in range(2):  # idempotent
        api.access.acl.put(path="/pool/dev", roles="PVEVMUser", groups="developers")
    assert api.access.acl.get() == [
        {"path": "/pool/dev", "type": "group", "ugid": "developers", "roleid": "PVEVMUser", "propagate": 1}
    ]
    api.access.acl.put(path="/pool/dev", roles="PVEVMUser", groups="developers", delete=1)
    assert api.access.acl.get() == []
    roles = {r["roleid"]: r for r in api.access.roles.get()}
    assert {"PVEVMUser", "PVEVMAdmin", "PVEAuditor", "PVEPoolAdmin", "PVESDNUser", "Administrator", "NoAccess"} <= set(
        roles
    )
    assert "VM.GuestAgent.FileRead" in roles["PVEVMUser"]["privs"] and "VM.Monitor" not in roles["PVEVMAdmin"]["privs"]


@needs_schema
def test_pve9_rejects_vm_monitor(api: Any) -> None:
    err = failure(api.access.roles.post, roleid="Mon", privs="VM.Audit,VM.Monitor")
    assert err.errors == {"privs": "invalid format - invalid privilege 'VM.Monitor'\n"}


@needs_schema  # the op permissions come from the schema
def test_privsep_token_without_acl_is_forbidden(fake: FakePve) -> None:
    limited = client(fake, token="limited", privsep=True)
    err = failure(limited.nodes(NODE).qemu(9000).config.get)
    assert (err.status_code, err.content) == (403, "Permission check failed (/vms/9000, VM.Audit)")
    assert limited.cluster.resources.get(type="vm") == []  # `user: all` routes filter instead
    fake.add_acl("/vms/9000", "PVEAuditor", token="root@pam!limited")
    assert limited.nodes(NODE).qemu(9000).config.get()["name"] == "debian12-cloud"
    err = failure(limited.nodes(NODE).qemu(9000).clone.post, newid=101)
    assert err.content == "Permission check failed (/vms/9000, VM.Clone)"


@needs_schema  # the op permissions come from the schema
def test_pool_acl_applies_to_member_vms(fake: FakePve, api: Any) -> None:
    api.pools.post(poolid="dev")
    clone(api, 101, pool="dev")
    clone(api, 102)
    fake.add_group("developers", members=["dev@pve"])
    fake.add_acl("/pool/dev", "PVEVMAdmin", group="developers")
    dev = client(fake, user="dev@pve", token="t", privsep=False)
    assert dev.nodes(NODE).qemu(101).status.current.get()["vmid"] == 101
    assert failure(dev.nodes(NODE).qemu(102).status.current.get).status_code == 403
    assert [r["vmid"] for r in dev.cluster.resources.get(type="vm")] == [101]
    perms = api.access.permissions.get(userid="dev@pve", path="/vms/101")
    # pool-derived roles never propagate (RPCEnvironment::compile_acl_path: "never set propagation for pool-derived
    # ACLs"); they are merged into the VM's own
    assert perms["/vms/101"]["VM.PowerMgmt"] == 0
    assert api.access.permissions.get(userid="dev@pve", path="/vms/102") == {"/vms/102": {}}


def test_firewall_rules_go_on_top_and_start_disabled(fake: FakePve, api: Any) -> None:
    fw = api.cluster.firewall
    fw.groups.post(group="webserver", comment="http in")
    err = failure(fw.groups.post, group="webserver")
    assert (err.status_code, err.errors) == (400, {"group": "Security group 'webserver' already exists"})
    assert fw.groups.get()[0]["comment"] == "http in"
    fw.groups("webserver").post(type="in", action="ACCEPT", proto="tcp", dport="80")
    fw.groups("webserver").post(type="in", action="ACCEPT", proto="tcp", dport="443", enable=1)
    rules = fw.groups("webserver").get()
    assert [(r["pos"], r["dport"], r["enable"]) for r in rules] == [(0, "443", 1), (1, "80", 0)]
    assert failure(fw.groups("webserver")(5).get).content == "no rule at position 5"
    vmfw = api.nodes(NODE).qemu(9000).firewall
    vmfw.options.put(enable=1, policy_in="DROP")
    assert vmfw.options.get()["policy_in"] == "DROP"
    vmfw.rules.post(type="group", action="webserver", enable=1)
    # pve-firewall checks a group rule's name, not that the group exists (the compiler skips it with a warning)
    vmfw.rules.post(type="group", action="ghost")
    assert failure(vmfw.rules.post, type="group", action="9bad").errors == {
        "action": "value does not match the regex pattern"  # the schema's pattern answers first
    }
    vmfw.rules(0).delete()
    assert failure(fw.groups("webserver").delete).content == "Security group 'webserver' is not empty"
    fw.ipset.post(name="trusted")
    fw.ipset("trusted").post(cidr="10.0.0.0/24")
    assert failure(fw.ipset("trusted").post, cidr="10.0.0.0/24").errors == {
        "cidr": "address '10.0.0.0/24' already exists"
    }
    fw.ipset("trusted")("10.0.0.0/24").delete()
    assert fw.ipset("trusted").get() == []


# -- faults ------------------------------------------------------------------------------------------


def test_error_rate_fails_before_any_effect(fake: FakePve, api: Any) -> None:
    fake.faults.error_rate = 1.0
    err = failure(api.pools.post, poolid="dev")
    assert (err.status_code, err.content) == (500, "fake: injected failure")
    fake.faults.error_rate = 0.0
    assert "dev" not in fake.state.pools
    api.pools.post(poolid="dev")


def test_lock_timeout_fault(fake: FakePve, api: Any) -> None:
    fake.faults.lock_timeout_rate = 1.0
    err = failure(api.nodes(NODE).qemu(9000).clone.post, newid=101)
    assert err.content == "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"
    assert 101 not in fake.state.vms


def test_failed_clone_task_removes_the_half_vm(fake: FakePve, api: Any) -> None:
    fake.task_seconds = 0.5  # long enough to observe the running task
    fake.faults.fail_next_task("qmclone", "can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout")
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=101)
    assert 101 in fake.state.vms
    status = wait(api, upid)
    assert (
        status["exitstatus"]
        == "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
    )
    assert api.nodes(NODE).tasks(upid).log.get()[-1]["t"].startswith("TASK ERROR: clone failed:")
    assert 101 not in fake.state.vms


def test_task_invisible_window_and_slow_tasks(fake: FakePve, api: Any) -> None:
    fake.faults.task_invisible_seconds = 0.3
    fake.faults.slow_tasks = 2.0
    started = time.monotonic()
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=101)
    assert failure(api.nodes(NODE).tasks(upid).status.get).errors == {"upid": "no such task"}
    time.sleep(0.35)
    assert wait(api, upid)["exitstatus"] == "OK"
    assert time.monotonic() - started >= 0.1  # 0.05 s * 2


def test_realizer_failure_fails_the_start_task(fake: FakePve, api: Any) -> None:
    class Broken(NullRealizer):
        def vm_started(self, vm: Any) -> None:
            raise RuntimeError(f"lxc-start failed for {vm.name}")

    fake.realizer = Broken()
    clone(api, 101, name="web1")
    assert wait(api, api.nodes(NODE).qemu(101).status.start.post())["exitstatus"] == "lxc-start failed for web1"
    assert fake.state.vms[101].status == "stopped"


# -- recording, schema, standalone ------------------------------------------------------------------


def test_recording_to_file(fake: FakePve, api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "requests.jsonl"
    monkeypatch.setenv("PVEFAKE_RECORD", str(target))
    api.nodes(NODE).qemu(9000).config.get()
    api.access.users.post(userid="bob@pve", password="verysecret")
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(x["method"], x["route"]) for x in lines] == [
        ("GET", "/nodes/{node}/qemu/{vmid}/config"),
        ("POST", "/access/users"),
    ]
    assert lines[1]["params"]["password"] == "**********"
    assert fake.requests[-1].params["password"] == "verysecret" and fake.requests[-1].status == 200
    assert fake.route_counts()[("GET", "/nodes/{node}/qemu/{vmid}/config")] == 1


@needs_schema
def test_recording_replays_against_both_schemas(
    fake: FakePve, api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "session.jsonl"
    monkeypatch.setenv("PVEFAKE_RECORD", str(target))
    clone(api, 101, name="web1")
    api.cluster.sdn.put(**{"release-lock": 1})
    violations = check_recording(target)
    assert [(v.version, v.method, v.route) for v in violations] == [("8.4", "PUT", "/cluster/sdn")]
    assert violations[0].errors == (
        "release-lock: property is not defined in schema and the schema does not allow additional properties",
    )


@needs_schema
def test_schema_validator_versions_and_formats() -> None:
    v9, v8 = Schema.load("9.1"), Schema.load("8.4")
    assert v9.validate("PUT", "/cluster/sdn", {"lock-token": "abc"}) == []
    assert v8.validate("PUT", "/cluster/sdn", {"lock-token": "abc"}) == [
        "lock-token: property is not defined in schema and the schema does not allow additional properties"
    ]
    assert v8.validate("POST", "/cluster/sdn/lock", {})[0].endswith("not implemented")
    assert v8.validate("POST", "/access/roles", {"roleid": "m", "privs": "VM.Monitor"}) == []
    ok = {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=20", "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1"}
    assert v9.validate("PUT", "/api2/json/nodes/pve1/qemu/101/config", ok) == []
    bad = v9.validate("PUT", "/nodes/pve1/qemu/101/config", {"net32": "virtio", "net1": "virtio,tag=5000"})
    assert bad == [
        "net1: invalid format - format error\nnet1.tag: value must have a maximum value of 4094\n",
        "net32: property is not defined in schema and the schema does not allow additional properties",
    ]
    assert v9.validate("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "99"}) == [
        "newid: invalid format - value does not look like a valid VM ID\n"
    ]
    assert v9.validate("GET", "/cluster/resources", {"type": "x"}) == [
        "type: value 'x' does not have a value in the enumeration 'vm, storage, node, sdn'"
    ]
    upid = "UPID:pve1:00001234:00ABCDEF:6700AA00:qmclone:9000:root@pam!provisioner:"
    match = v9.match(f"/nodes/pve1/tasks/{upid}/status")
    assert match is not None and match.params["upid"] == upid


def test_runs_without_validation(tmp_path: Path) -> None:
    pve = FakePve(validate=False, task_seconds=0.01, schema_folder=tmp_path).start()
    try:
        assert not pve.validating and "validation disabled" in pve.validation_note
        assert client(pve).cluster.nextid.get() == "100"
    finally:
        pve.stop()
    missing = FakePve(schema_folder=tmp_path)
    assert not missing.validating and missing.validation_note.startswith("validation OFF")


def test_standalone_cli(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "fakes")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pvefake", "--port", "0", "--node", "pve1", "--token-file", str(token_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        host, port = proc.stdout.readline().strip().split(":")
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        secret = token_file.read_text().strip()
        api = ProxmoxAPI(
            host, port=int(port), user="root@pam", token_name="provisioner", token_value=secret, verify_ssl=False
        )
        quiet_insecure_warnings(api)
        assert api.nodes(NODE).qemu(9000).config.get()["template"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
