"""API flows of the Proxmox backend against the fake, in-process and without booting anything (the fake's
VMs stay virtual, so apply does not wait for SSH): preflight refusals, task failures and timeouts, the nextid
race between two applies, and what a destroy leaves."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import run_cli, write_site
from pvefake import FakePve
from test_proxmox_design import proxmox_data

from provisioner.backends.proxmox.backend import ProxmoxBackend
from provisioner.backends.proxmox.client import PveError
from provisioner.site.load import load_site
from provisioner.workspace.site_state import SiteState

pytest.importorskip("proxmoxer")


def small_data(fake: FakePve, name: str = "pvflow", **backend: object) -> dict:
    data = proxmox_data(port=fake.port, **backend)
    data["site"] = name
    data["hosts"] = [h for h in data["hosts"] if h["name"] in ("dev-app1", "prod-db1")]
    data["flows"] = []
    return data


def backend_for(tmp_path: Path, data: dict) -> ProxmoxBackend:
    site = load_site(write_site(tmp_path / data["site"], data))
    backend = ProxmoxBackend(site, SiteState(site.name, tmp_path / "state" / site.name))
    backend.wait_for_ssh = False  # the fake's VMs are not booted here
    return backend


def converge(backend: ProxmoxBackend) -> None:
    """As `provision apply` does it: preflight, the checks before building, plan, apply."""
    backend.preflight()
    backend.preflight_build()
    backend.apply(backend.plan(), lambda message: None)


def plan_refused(fake: FakePve, path: Path, env: dict[str, str] | None = None) -> str:
    """`provision plan` exits 2 with no traceback and sends Proxmox nothing but reads; its stderr."""
    start = len(fake.requests)
    result = run_cli("plan", str(path), env=env)
    assert result.rc == 2, result.stdout + result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert [(r.method, r.path) for r in fake.requests[start:] if r.method != "GET"] == [], "nothing may be touched"
    return result.stderr


def with_vlans_moved(data: dict, by: int) -> dict:
    """The same site on other VLANs: two sites on one bridge cannot share a VLAN (the census refuses it)."""
    data["management"]["vlan"] += by
    for env in data["environments"]:
        env["segment"]["vlan"] += by
    return data


def site_vms(fake: FakePve, site: str) -> list[dict]:
    api = fake.client(token_name="tests")  # a token of its own: the backend's stays as it is
    return [r for r in api.cluster.resources.get(type="vm") if str(r.get("name")).startswith(f"{site}-")]


@pytest.mark.parametrize(
    ("setting", "value", "key_path"),
    [("node", "pve9", "backend.node"), ("template", 9001, "backend.template"), ("bridge", "vmbr7", "backend.bridge")],
)
def test_preflight_refuses_what_the_cluster_cannot_honour(fake, tmp_path, setting, value, key_path):
    fake.add_vm(9001, {"name": "not-a-template", "memory": "512"})
    path = write_site(tmp_path / "pvflow", small_data(fake, **{setting: value}))
    start = len(fake.requests)
    result = run_cli("plan", str(path))
    assert result.rc == 2, result.stderr
    assert key_path in result.stderr and str(path) in result.stderr
    assert not [r for r in fake.requests[start:] if r.method != "GET"], "nothing may be touched"


def test_a_failed_task_fails_the_apply_with_its_log_and_leaves_no_half_made_vm(fake, tmp_path):
    backend = backend_for(tmp_path, small_data(fake))
    fake.faults.fail_next_task("qmstart", "start failed: QEMU exited with code 1")
    with pytest.raises(PveError, match=r"start failed: QEMU exited with code 1.*task log"):
        converge(backend)
    fake.wait_tasks()
    assert all("ready" in str(vm.get("tags")) for vm in site_vms(fake, "pvflow")), "a half-made VM was left"
    converge(backend_for(tmp_path, small_data(fake)))
    assert backend_for(tmp_path, small_data(fake)).plan().empty


def test_a_task_that_outlives_the_timeout_is_an_error_not_a_silent_success(fake, tmp_path):
    backend = backend_for(tmp_path, small_data(fake, task_timeout=5))
    fake.faults.slow_tasks = 200.0  # 0.05 s tasks take 10 s
    with pytest.raises(PveError, match=r"still running after 5s"):
        converge(backend)
    fake.faults.slow_tasks = 1.0


def test_two_applies_racing_for_vm_ids_both_converge(fake, tmp_path):
    """`nextid` does not reserve: both sites are offered the same ids and the loser of each clone retries."""
    sites = {"pvrace": small_data(fake, name="pvrace")}
    sites["pvrival"] = with_vlans_moved(small_data(fake, name="pvrival"), 100)
    backends = [backend_for(tmp_path / name, data) for name, data in sites.items()]
    errors: list[BaseException] = []

    def run(backend: ProxmoxBackend) -> None:
        try:
            converge(backend)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    ids = [vm["vmid"] for site in ("pvrace", "pvrival") for vm in site_vms(fake, site)]
    assert len(ids) == len(set(ids)) == 6
    collisions = [r for r in fake.requests if r.route.endswith("/clone") and "already exists" in (r.reason or "")]
    for backend in backends:
        assert backend_for(backend.state.root.parent.parent, sites[backend.site.name]).plan().empty
    print(f"clone collisions resolved: {len(collisions)}")


def test_destroy_removes_every_object_of_the_site_and_nothing_else(fake, tmp_path):
    fake.add_pool("someone-else", comment="not ours")
    backend = backend_for(tmp_path, small_data(fake))
    converge(backend)
    destroy = backend_for(tmp_path, small_data(fake))
    plan = destroy.destroy_plan()
    assert {c.name for c in plan.changes if c.production} >= {"prod-db1", "prod", "pool-prod", "firewall-prod"}
    destroy.apply(plan, lambda message: None)
    destroy.cleanup_site()
    assert site_vms(fake, "pvflow") == []
    api = fake.client(token_name="tests")
    assert [p["poolid"] for p in api.pools.get()] == ["someone-else"]
    assert not [g for g in api.access.groups.get() if g["groupid"].startswith("pvflow-")]
    assert not [u for u in api.access.users.get() if u["userid"] != "root@pam"]
    assert not [v for v in api.cluster.sdn.vnets.get() if "pvflow" in str(v.get("alias"))]
    assert not api.cluster.firewall.groups.get()
    assert backend_for(tmp_path, small_data(fake)).discover().empty


def test_isolation_reads_each_vm_config_and_names_what_hands_in_the_node(fake, tmp_path):
    """HYP-1 on Proxmox: a QEMU VM with nothing of the node passed through is separated; a PCI device passed
    through is named; a machine with no VM is a problem, not a pass."""
    backend = backend_for(tmp_path, small_data(fake))
    converge(backend)
    found = backend.isolation(["dev-app1", "prod-db1", "test-app1"])
    assert not found["dev-app1"].shares_kernel and found["dev-app1"].problems == []
    assert found["dev-app1"].facts[0].startswith("Proxmox QEMU VM ")
    assert found["test-app1"].problems == ["no Proxmox VM holds test-app1"]
    vmid = next(int(vm["vmid"]) for vm in site_vms(fake, "pvflow") if str(vm["name"]).endswith("dev-app1"))
    with fake.state.lock:
        fake.state.vms[vmid].config["hostpci0"] = "0000:01:00"
    assert backend.isolation(["dev-app1"])["dev-app1"].problems == [
        "hostpci0: 0000:01:00: a host PCI device passed through"
    ]


def _macs(fake: FakePve, site: str) -> dict[str, str]:
    api = fake.client(token_name="tests-macs")
    found = {}
    for vm in [r for r in api.cluster.resources.get(type="vm") if str(r.get("name")).startswith(f"{site}-")]:
        config = api.nodes(vm["node"]).qemu(vm["vmid"]).config.get()
        for key in sorted(k for k in config if k.startswith("net")):
            found[f"{vm['name']}/{key}"] = str(config[key]).split(",")[0]
    return found


def test_an_update_keeps_every_nics_mac_address(fake, tmp_path):
    """Proxmox makes a new MAC for a netN sent without one; cloud-init would take the VM for a new instance and
    make new host keys. A size change (an update in place, data kept) resends every NIC: each keeps its MAC."""
    converge(backend_for(tmp_path, small_data(fake)))
    before = _macs(fake, "pvflow")
    assert before and all(m.startswith("virtio=") and len(m) == len("virtio=") + 17 for m in before.values()), before
    bigger = small_data(fake)
    next(h for h in bigger["hosts"] if h["name"] == "dev-app1")["size"] = "medium"
    backend = backend_for(tmp_path, bigger)
    plan = backend.plan()
    assert [(c.name, c.action.value) for c in plan.changes if c.kind.value == "host"] == [("dev-app1", "update")]
    backend.apply(plan, lambda message: None)
    assert backend_for(tmp_path, bigger).plan().empty
    assert _macs(fake, "pvflow") == before


def _power(fake: FakePve, start: int, vmid: int) -> list[tuple[str, dict]]:
    """The power requests the backend sent for one VM since `start`: (action, parameters beyond node and vmid)."""
    found = []
    for r in fake.requests[start:]:
        if (
            r.method == "POST"
            and r.route.startswith("/nodes/{node}/qemu/{vmid}/status/")
            and int(r.params["vmid"]) == vmid
        ):
            found.append((r.route.rsplit("/", 1)[1], {k: v for k, v in r.params.items() if k not in ("node", "vmid")}))
    return found


def _vmid(fake: FakePve, name: str) -> int:
    api = fake.client(token_name="tests-vmid")
    return int(next(r["vmid"] for r in api.cluster.resources.get(type="vm") if r.get("name") == name))


def _resized(fake: FakePve, **backend: object) -> dict:
    data = small_data(fake, **backend)
    next(h for h in data["hosts"] if h["name"] == "dev-app1")["size"] = "medium"
    return data


def test_an_update_shuts_the_vm_down_cleanly_and_never_stops_it_hard(fake, tmp_path):
    converge(backend_for(tmp_path, small_data(fake, shutdown_timeout=30)))
    vmid, start = _vmid(fake, "pvflow-dev-app1"), len(fake.requests)
    backend = backend_for(tmp_path, _resized(fake, shutdown_timeout=30))
    backend.apply(backend.plan(), lambda message: None)
    assert _power(fake, start, vmid) == [("shutdown", {"timeout": "30"}), ("start", {})]


def test_a_guest_that_ignores_the_shutdown_is_stopped_after_the_timeout_and_the_apply_says_so(fake, tmp_path):
    converge(backend_for(tmp_path, small_data(fake, shutdown_timeout=2)))
    vmid, start = _vmid(fake, "pvflow-dev-app1"), len(fake.requests)
    fake.faults.ignore_shutdown.add(vmid)
    said: list[str] = []
    backend = backend_for(tmp_path, _resized(fake, shutdown_timeout=2))
    backend.apply(backend.plan(), said.append)
    power = _power(fake, start, vmid)
    assert power == [("shutdown", {"timeout": "2"}), ("stop", {}), ("start", {})], "one shutdown (not retried)"
    assert any(f"VM {vmid} did not shut down within 2s" in m and "powerdown failed" in m for m in said), said
    assert backend_for(tmp_path, _resized(fake, shutdown_timeout=2)).plan().empty


def test_a_removal_shuts_down_before_it_deletes(fake, tmp_path):
    converge(backend_for(tmp_path, small_data(fake, shutdown_timeout=30)))
    vmid, start = _vmid(fake, "pvflow-dev-app1"), len(fake.requests)
    fewer = small_data(fake, shutdown_timeout=30)
    fewer["hosts"] = [h for h in fewer["hosts"] if h["name"] != "dev-app1"]
    backend = backend_for(tmp_path, fewer)
    backend.apply(backend.plan(), lambda message: None)
    assert _power(fake, start, vmid) == [("shutdown", {"timeout": "30"})]
    deletes = [r for r in fake.requests[start:] if r.method == "DELETE" and r.route == "/nodes/{node}/qemu/{vmid}"]
    assert [int(r.params["vmid"]) for r in deletes] == [vmid]


def test_a_shutdown_timeout_not_shorter_than_the_task_timeout_is_refused(fake, tmp_path):
    path = write_site(tmp_path / "pvflow", small_data(fake, shutdown_timeout=600, task_timeout=600))
    result = run_cli("plan", str(path))
    assert result.rc == 2, result.stderr
    assert "backend.shutdown_timeout" in result.stderr and "allowed: 0 to 599" in result.stderr, result.stderr


def _gateway_nics(fake: FakePve, macs: bool = False) -> dict[str, str]:
    """The gateway's NICs: netN -> VNet (or VNet -> MAC)."""
    api = fake.client(token_name="tests-gw")
    config = api.nodes("pve1").qemu(_vmid(fake, "pvflow-gateway")).config.get()
    nics = {k: str(v) for k, v in config.items() if k.startswith("net")}
    if macs:
        return {v.split("bridge=")[1].split(",")[0]: v.split(",")[0].split("=")[1] for v in nics.values()}
    return {k: v.split("bridge=")[1].split(",")[0] for k, v in nics.items()}


def _with_uat(fake: FakePve) -> dict:
    """The small site with a second test environment, uat, between test and prod in the gateway's NIC order."""
    data = small_data(fake)
    uat = {**next(e for e in data["environments"] if e["name"] == "test"), "name": "uat", "colour": "blue",
           "segment": {"vlan": 25, "cidr": "10.90.25.0/24", "gateway": "10.90.25.1"}}  # fmt: skip
    data["environments"].insert(2, uat)
    data["releases"]["path"] = ["dev", "test", "uat", "prod"]
    return data


def test_removing_an_environment_takes_its_nic_off_the_gateway_and_keeps_production_routed(fake, tmp_path):
    """The gateway loses the NIC on the removed environment's VNet (no NIC on a deleted VNet, no second NIC on
    another one after the renumbering), and runs again: production stays routed."""
    converge(backend_for(tmp_path, _with_uat(fake)))
    names = backend_for(tmp_path, _with_uat(fake)).names
    before = _gateway_nics(fake)
    assert sorted(before.values()) == sorted(names.vnet(s) for s in ("mgmt", "dev", "test", "uat", "prod")), before
    macs = _gateway_nics(fake, macs=True)
    backend = backend_for(tmp_path, small_data(fake))
    backend.apply(backend.plan(), lambda message: None)
    after = _gateway_nics(fake)
    assert sorted(after.values()) == sorted(names.vnet(s) for s in ("mgmt", "dev", "test", "prod")), after
    assert "net4" not in after and after["net3"] == names.vnet("prod"), "prod's NIC moved up in place of uat's"
    kept = _gateway_nics(fake, macs=True)
    assert kept == {vnet: mac for vnet, mac in macs.items() if vnet != names.vnet("uat")}, "each NIC kept its MAC"
    api = fake.client(token_name="tests-gw2")
    assert api.nodes("pve1").qemu(_vmid(fake, "pvflow-gateway")).status.current.get()["status"] == "running"
    assert names.vnet("uat") not in {v["vnet"] for v in api.cluster.sdn.vnets.get()}
    assert backend_for(tmp_path, small_data(fake)).plan().empty
