"""The Proxmox backend end to end: the real CLI and unmodified proxmoxer against the schema-validating fake,
whose started VMs are LXC containers, so the roles and the conformance suite run through the Proxmox path."""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Lab, lab_site_data
from helpers import ROOT, proxmox_backend, write_site
from pvecontract import keep
from pvefake import FakePve
from pvefake.realize_lxc import LxcRealizer, cleanup_lab

pytestmark = [pytest.mark.lab, pytest.mark.proxmox_lab]

SITE = "pvlab"
NET = 98
TEMPLATE = 9000
WRITES = ("POST", "PUT", "DELETE")
ADMIN = "dave"  # the example's admin (lab_site_data)


def proxmox_site(name: str, net: int, fake: FakePve, *, environments: list[str] | None = None) -> dict:
    data = lab_site_data(name, net)
    # the controller has no probe point on a Proxmox access network, so NET-2 could not be attempted from one
    # (verify would fail): the Proxmox path of access networks is covered by the unit tests (VNet, gateway NIC,
    # security groups)
    data.pop("access_networks", None)
    data["management"]["vlan"] = 5
    data["backend"] = proxmox_backend(fake.host, fake.port)
    # no people's private keys here: the login attempts are declared out of scope (verify would fail without)
    data["out_of_scope"] = [
        {"control": cid, "reason": "the Proxmox lab runs without people's private keys", "decided_by": ADMIN}
        for cid in ("ACC-2", "ACC-4")
    ]
    if environments is not None:  # machines only there; every segment stays, as the path to live needs them
        data["hosts"] = [h for h in data["hosts"] if h["environment"] in environments]
        data["flows"] = []
    return data


class Api:
    """The test's own proxmoxer client: looks at the cluster the way any API user would."""

    def __init__(self, fake: FakePve, secret: str):
        from proxmoxer import ProxmoxAPI

        self._api = ProxmoxAPI(
            f"{fake.host}:{fake.port}", user="root@pam", token_name="provisioner", token_value=secret, verify_ssl=False
        )

    def get(self, path: str, /, **params: object):
        return self._api(path.strip("/")).get(**params)

    def put(self, path: str, /, **params: object):
        return self._api(path.strip("/")).put(**params)

    def delete(self, path: str, /, **params: object):
        return self._api(path.strip("/")).delete(**params)


class PveLab(Lab):
    """A lab whose site lives on a fake Proxmox cluster; the token secret reaches provision by environment."""

    def __init__(self, base: Path, name: str, data: dict, secret: str):
        super().__init__(
            site_file=write_site(base / "inventories" / name, data),
            state_dir=base / "state",
            env={"PROVISION_STATE_DIR": str(base / "state"), "PROVISION_PVE_TOKEN": secret},
        )
        self.name = name
        self.secret = secret
        (self.site_file.parent / "demo-keys").symlink_to(ROOT / "inventories" / "example" / "demo-keys")

    def cli(self, *args: str, timeout: float = 900):
        return super().cli(*args, timeout=timeout)


def start_fake(lab_id: str, controller: str) -> tuple[FakePve, str]:
    cleanup_lab(lab_id)
    fake = FakePve(schema_version="9.1", node="pve1", realizer=LxcRealizer(lab_id, controller=controller))
    fake.start()
    secret = fake.add_token("root@pam", "provisioner", privsep=False)
    fake.add_storage("local-lvm")
    fake.add_bridge("vmbr0")
    fake.add_template(TEMPLATE, name="debian12-cloud")
    return fake, secret


@pytest.fixture(scope="module")
def pve(tmp_path_factory) -> Iterator[tuple[FakePve, PveLab]]:
    fake, secret = start_fake("pvf8", f"10.{NET}.0.1")
    lab = PveLab(tmp_path_factory.mktemp("pve"), SITE, proxmox_site(SITE, NET, fake), secret)
    try:
        yield fake, lab
    finally:
        lab.cli("destroy", str(lab.site_file), "--confirm-prod", SITE)
        keep(fake)
        fake.stop()
        fake.realizer.close()


def writes_since(fake: FakePve, start: int) -> list[tuple[str, str]]:
    return [(r.method, r.route) for r in fake.requests[start:] if r.method in WRITES]


def vms_of(api: Api, site: str) -> dict[str, dict]:
    """name -> resource entry, read through the API."""
    return {
        str(r["name"]): r
        for r in api.get("cluster/resources", type="vm")
        if str(r.get("name", "")).startswith(f"{site}-")
    }


def test_plan_on_an_empty_cluster_lists_everything_with_one_call_per_resource_type(pve):
    fake, lab = pve
    start = len(fake.requests)
    result = lab.cli("plan", str(lab.site_file), "--json")
    assert result.rc == 0, result.stderr
    changes = json.loads(result.stdout)["changes"]
    kinds = {(c["kind"], c["name"]) for c in changes}
    assert ("gateway", "gateway") in kinds and ("host", "prod-db1") in kinds
    assert {("segment", s) for s in ("mgmt", "dev", "test", "prod")} <= kinds
    assert ("policy", "access") in kinds and ("policy", "pools") in kinds
    routes = [r.route for r in fake.requests[start:]]
    assert not writes_since(fake, start), "plan must not change anything"
    per_vm = [r for r in routes if "{vmid}" in r and not r.endswith("/config")]
    assert not per_vm, f"plan reads per VM: {per_vm}"


def test_apply_builds_the_site_and_the_roles_run(pve):
    fake, lab = pve
    api = Api(fake, lab.secret)
    result = lab.cli("apply", str(lab.site_file))
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    vms = vms_of(api, SITE)
    assert set(vms) == {
        f"{SITE}-{n}" for n in ("gateway", "dev-app1", "dev-db1", "test-app1", "test-db1", "prod-app1", "prod-db1")
    }
    for name, vm in vms.items():
        tags = set(str(vm.get("tags", "")).split(";"))
        assert {f"site-{SITE}", "ready"} <= tags, name
        assert vm["status"] == "running"
    prod = api.get(f"/nodes/pve1/qemu/{vms[f'{SITE}-prod-db1']['vmid']}/config")
    assert int(prod["protection"]) == 1
    assert "bridge=" in prod["net0"] and "tag=" not in prod["net0"], "VMs attach to the VNet, which carries the tag"
    assert vms[f"{SITE}-prod-db1"]["pool"] == f"{SITE}-prod"
    vnets = {v["vnet"]: v for v in api.get("/cluster/sdn/vnets", running=1)}
    tags = sorted(int(v["tag"]) for v in vnets.values() if str(v.get("alias", "")).startswith(f"provisioner {SITE} "))
    assert tags == [5, 10, 20, 30]


def test_verify_passes_including_hypervisor_access(pve):
    _fake, lab = pve
    result = lab.cli("verify", str(lab.site_file), "--json")
    assert result.rc == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["not_attempted"] == [], "every attempt not made here is declared out of scope"
    acc6 = summary["controls"]["ACC-6"]
    assert acc6["pass"] >= 2 and acc6["fail"] == 0
    net3 = summary["controls"]["NET-3"]  # each host's nftables, and Proxmox's firewall in force on its NICs
    assert net3["fail"] == 0 and net3["pass"] >= 2 * len(proxmox_site(SITE, NET, _fake)["hosts"]), net3
    hyp1 = summary["controls"]["HYP-1"]
    assert hyp1["pass"] >= 1 and hyp1["fail"] == 0, "QEMU VMs read back through the API, nothing of the node handed in"
    # no probe point on a Proxmox segment: ACC-3's logins fall back to psql over SSH on a development host, and
    # the evidence says so (a developer is root where they run)
    run = json.loads((Path(summary["run_dir"]) / "results.json").read_text())
    acc3 = [r for r in run["results"] if r["check"] == "test_developer_cannot_reach_the_production_database"]
    assert acc3 and all(r["status"] == "pass" for r in acc3), acc3
    for row in acc3:
        assert "over SSH (the proxmox backend gives no probe point)" in row["evidence"], row["evidence"]
        assert "a developer is root there" in row["evidence"]
        assert not any(r["source"].startswith("probe@") for r in row["rows"]), row["rows"]


def test_a_developer_granted_production_at_the_hypervisor_fails_acc6_and_apply_revokes_it(pve):
    fake, lab = pve
    api = Api(fake, lab.secret)
    api.put("/access/acl", path=f"/pool/{SITE}-prod", roles="PVEVMUser", users="alice@pve")
    try:
        result = lab.cli("verify", str(lab.site_file), "--json", "-k", "hypervisor")
        assert result.rc != 0
        assert "alice@pve holds PVEVMUser on prod" in result.stdout
        plan = lab.cli("plan", str(lab.site_file), "--json")
        access = [c for c in json.loads(plan.stdout)["changes"] if c["name"] == "access"]
        assert access and "PVEVMUser on /pool/pvlab-prod for user alice@pve" in access[0]["detail"]
        assert access[0]["production"], "revoking a production grant is a production change"
        assert lab.cli("apply", str(lab.site_file)).rc == 3, "a production change needs the confirmation"
        applied = lab.cli("apply", str(lab.site_file), "--confirm-prod", SITE)
        assert applied.rc == 0, applied.stderr[-2000:]
    finally:
        api.put("/access/acl", path=f"/pool/{SITE}-prod", roles="PVEVMUser", users="alice@pve", delete=1)
    assert lab.cli("verify", str(lab.site_file), "-k", "hypervisor").rc == 0


def test_a_datacenter_firewall_switched_off_fails_net3_for_every_host_and_plan_switches_it_on(pve):
    """The security groups stay configured, so only reading what is in force shows that nothing filters."""
    fake, lab = pve
    api = Api(fake, lab.secret)
    hosts = [h["name"] for h in proxmox_site(SITE, NET, fake)["hosts"]]
    api.put("/cluster/firewall/options", enable=0)
    try:
        result = lab.cli("verify", str(lab.site_file), "--json", "-k", "hypervisors_firewall")
        assert result.rc != 0, result.stdout[-3000:]
        summary = json.loads(result.stdout)
        assert summary["controls"]["NET-3"]["fail"] == len(hosts), summary["controls"]["NET-3"]
        assert "the Proxmox datacenter firewall is off: the site's security groups filter nothing" in result.stdout
        status = json.loads(lab.cli("status", str(lab.site_file), "--json").stdout)["hypervisor_firewall"]
        assert status["enforced"] is False and set(status["machines"]) == set(hosts), status
        plan = json.loads(lab.cli("plan", str(lab.site_file), "--json").stdout)
        assert [c["name"] for c in plan["changes"]] == ["datacenter-firewall"], plan
    finally:
        api.put("/cluster/firewall/options", enable=1)
    assert lab.cli("verify", str(lab.site_file), "-k", "hypervisors_firewall").rc == 0


def test_second_apply_changes_nothing(pve):
    fake, lab = pve
    start = len(fake.requests)
    plan = lab.cli("plan", str(lab.site_file), "--json")
    assert json.loads(plan.stdout)["changes"] == []
    calls = collections.Counter((r.method, r.route) for r in fake.requests[start:])
    # the VLAN census before plan reads each guest's NICs once (the template is skipped; preflight reads it)
    configs = calls.pop(("GET", "/nodes/{node}/qemu/{vmid}/config"))
    guests = [r for r in Api(fake, lab.secret).get("cluster/resources", type="vm") if not r.get("template")]
    assert configs == len(guests) + 1, "one config read per guest, no more"
    # the privilege preflight reads each path it checks once
    paths = [r.params.get("path") for r in fake.requests[start:] if r.route == "/access/permissions"]
    assert calls.pop(("GET", "/access/permissions")) == len(set(paths)), "each path's privileges read once"
    # preflight and the census both list the nodes and a node's network; discovery, the census and the privileges
    # of the template's NICs (on a VNet or a plain bridge?) the SDN VNets
    assert max(calls.values()) <= 3, f"plan of a built site repeats a call: {calls.most_common(3)}"
    assert len(calls) <= 20, "plan makes one list call per resource type, plus the preflight checks and the census"
    # --full: the roles run on every guest (a plain apply would leave the converged guests out)
    result = lab.cli("apply", str(lab.site_file), "--full", "--json")
    assert result.rc == 0, result.stderr[-2000:]
    stats = json.loads(result.stdout)["stats"]
    assert stats["changed"] == 0 and stats["ok"] > 0
    assert not writes_since(fake, start), "a second apply must not write to the cluster"


def test_the_token_secret_is_in_no_run_artifact_or_state_file(pve):
    _fake, lab = pve
    files = [p for p in (lab.state_dir).rglob("*") if p.is_file()]
    assert any("runs" in p.parts for p in files), "no run artifacts to look at"
    leaks = [p for p in files if lab.secret.encode() in p.read_bytes()]
    assert not leaks, f"the API token secret is written in {leaks}"


def test_destroying_production_refuses_without_confirmation_and_protection_holds(pve):
    fake, lab = pve
    api = Api(fake, lab.secret)
    start = len(fake.requests)
    result = lab.cli("destroy", str(lab.site_file), "--env", "prod")
    assert result.rc == 3
    assert "--confirm-prod" in result.stderr
    assert not writes_since(fake, start)
    vmid = vms_of(api, SITE)[f"{SITE}-prod-app1"]["vmid"]
    with pytest.raises(Exception, match="protection mode enabled"):
        api.delete(f"/nodes/pve1/qemu/{vmid}")


def test_destroy_leaves_nothing_of_the_site(pve):
    fake, lab = pve
    api = Api(fake, lab.secret)
    result = lab.cli("destroy", str(lab.site_file), "--confirm-prod", SITE)
    assert result.rc == 0, result.stderr[-2000:]
    assert vms_of(api, SITE) == {}
    assert not [v for v in api.get("/cluster/sdn/vnets") if str(v.get("alias", "")).startswith(f"provisioner {SITE}")]
    assert not [p for p in api.get("/pools") if str(p["poolid"]).startswith(f"{SITE}-")]
    assert not [g for g in api.get("/access/groups") if str(g["groupid"]).startswith(f"{SITE}-")]
    assert not [a for a in api.get("/access/acl") if f"/pool/{SITE}-" in str(a["path"])]


# ---- faults: a small site, machines in one environment ------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Iterator[tuple[FakePve, PveLab]]:
    fake, secret = start_fake("pvf9", "10.99.0.1")
    data = proxmox_site("pvsmall", 99, fake, environments=["dev"])
    lab = PveLab(tmp_path_factory.mktemp("pvsmall"), "pvsmall", data, secret)
    try:
        yield fake, lab
    finally:
        fake.faults.error_rate = 0.0
        fake.faults.lock_timeout_rate = 0.0
        lab.cli("destroy", str(lab.site_file), "--confirm-prod", "pvsmall")
        keep(fake)
        fake.stop()
        fake.realizer.close()


def assert_converged(fake: FakePve, lab: PveLab) -> None:
    api = Api(fake, lab.secret)
    plan = lab.cli("plan", str(lab.site_file), "--json")
    assert plan.rc == 0, plan.stderr
    assert json.loads(plan.stdout)["changes"] == []
    vms = vms_of(api, "pvsmall")
    assert set(vms) == {"pvsmall-gateway", "pvsmall-dev-app1", "pvsmall-dev-db1"}, "nothing orphaned, nothing lost"


def test_apply_killed_while_cloning_converges_on_rerun(small):
    fake, lab = small
    fake.faults.slow_tasks = 8.0
    proc = lab.popen("apply", str(lab.site_file))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(r.route.endswith("/clone") for r in fake.requests):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fake.faults.slow_tasks = 1.0
    result = lab.cli("apply", str(lab.site_file))
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert_converged(fake, lab)


def test_apply_through_random_500s_and_lock_timeouts_converges_or_says_why(small):
    fake, lab = small
    api = Api(fake, lab.secret)
    lab.cli("destroy", str(lab.site_file), "--confirm-prod", "pvsmall")
    fake.faults.error_rate = 0.1
    fake.faults.lock_timeout_rate = 0.2
    try:
        result = lab.cli("apply", str(lab.site_file))
    finally:
        fake.faults.error_rate = 0.0
        fake.faults.lock_timeout_rate = 0.0
    if result.rc != 0:
        message = result.stderr.strip().splitlines()[-1]
        assert "Proxmox" in message or "failed" in message, message
        assert "Traceback" not in result.stderr
        for vm in vms_of(api, "pvsmall").values():
            assert "ready" in str(vm.get("tags", "")) or vm.get("lock"), f"half-made VM left: {vm}"
        result = lab.cli("apply", str(lab.site_file))
        assert result.rc == 0, result.stderr[-2000:]
    injected = [r for r in fake.requests if r.status == 500 and "injected" in (r.reason or "")]
    assert injected, "the fault knobs did not fire: this test proved nothing"
    assert_converged(fake, lab)
