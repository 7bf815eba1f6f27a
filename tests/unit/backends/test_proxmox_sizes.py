"""Disk size and storage per machine size (`backend.sizes`): the boot disk grown with `PUT …/resize` after the
clone (and on an update), the full clones of a size on its own storage, the fingerprint that lets plan see a
change, and the refusals before anything is touched (a disk smaller than the template's, a storage without full
clones)."""

from __future__ import annotations

import pytest
from helpers import write_site
from pvefake import FakePve
from test_proxmox_backend import backend_for, converge, plan_refused, small_data

from provisioner.backends.proxmox.machines import fingerprint
from provisioner.planning.desired import MachineSpec
from provisioner.planning.planner import Kind
from provisioner.site.model import ProxmoxSettings

pytest.importorskip("proxmoxer")


def vm_disks(fake: FakePve) -> dict[str, str]:
    """Machine -> its scsi0 as the fake holds it."""
    return {
        vm.config["name"].removeprefix("pvsize-"): vm.config["scsi0"]
        for vm in fake.state.vms.values()
        if str(vm.config.get("name", "")).startswith("pvsize-")
    }


def test_the_boot_disk_grows_to_its_size_and_again_when_the_size_grows(fake, tmp_path):
    data = small_data(fake, "pvsize", sizes={"small": {"disk_gb": 20}, "medium": {"disk_gb": 12}})
    converge(backend_for(tmp_path, data))
    fake.wait_tasks()
    disks = vm_disks(fake)
    assert disks["dev-app1"].endswith("size=20G") and disks["prod-db1"].endswith("size=12G"), disks
    again = backend_for(tmp_path, data)
    again.preflight()
    assert again.plan().empty
    data["backend"]["sizes"]["small"]["disk_gb"] = 30
    grown = backend_for(tmp_path, data)
    grown.preflight()
    plan = grown.plan()
    assert {c.name for c in plan.changes if c.kind == Kind.HOST} == {"dev-app1"}, plan.changes
    grown.apply(plan, lambda message: None)
    fake.wait_tasks()
    assert vm_disks(fake)["dev-app1"].endswith("size=30G")
    resized = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/resize")]
    assert resized, "no resize call"


def test_a_size_gets_its_own_storage_on_full_clones(fake, tmp_path):
    fake.add_storage("bulk", type="lvmthin", content="images,rootdir")
    data = small_data(fake, "pvsize", full_clone=True, sizes={"medium": {"storage": "bulk", "disk_gb": 10}})
    converge(backend_for(tmp_path, data))
    fake.wait_tasks()
    disks = vm_disks(fake)
    assert disks["prod-db1"].startswith("bulk:") and disks["prod-db1"].endswith("size=10G"), disks
    assert disks["dev-app1"].startswith("local-lvm:") and disks["dev-app1"].endswith("size=8G"), disks


def refused(fake: FakePve, tmp_path, data: dict) -> str:
    return plan_refused(fake, write_site(tmp_path / "pvsize", data))


def test_a_disk_smaller_than_the_templates_is_refused(fake, tmp_path):
    stderr = refused(fake, tmp_path, small_data(fake, "pvsize", sizes={"small": {"disk_gb": 4}}))
    assert "backend.sizes.small.disk_gb" in stderr and "shrinking disks is not supported" in stderr
    assert "allowed: 8 or more" in stderr


def test_a_size_storage_needs_full_clones(fake, tmp_path):
    stderr = refused(fake, tmp_path, small_data(fake, "pvsize", sizes={"small": {"storage": "local-lvm"}}))
    assert "backend.sizes.small.storage" in stderr and "full_clone" in stderr


def test_a_size_storage_that_holds_no_images_is_refused(fake, tmp_path):
    fake.add_storage("isos", type="dir", content="iso,vztmpl")
    data = small_data(fake, "pvsize", full_clone=True, sizes={"large": {"storage": "isos"}})
    stderr = refused(fake, tmp_path, data)
    assert "backend.sizes.large.storage" in stderr and "does not hold VM images" in stderr


def settings_with(**extra: object) -> ProxmoxSettings:
    return ProxmoxSettings.model_validate(
        {
            "type": "proxmox",
            "host": "h",
            "node": "a",
            "token": {"id": "u@pve!t", "env": "E"},
            "template": 9000,
            **extra,
        }
    )


def test_the_fingerprint_follows_disk_size_and_storage_of_the_machines_size_only():
    spec = MachineSpec(name="dev-app1", kind=Kind.HOST, environment="dev", nics=(), size="small")
    plain = fingerprint(spec, settings_with())
    assert fingerprint(spec, settings_with(sizes={"large": {"disk_gb": 50}})) == plain, "another size's setting"
    twenty = fingerprint(spec, settings_with(sizes={"small": {"disk_gb": 20}}))
    assert twenty != plain
    assert fingerprint(spec, settings_with(sizes={"small": {"disk_gb": 30}})) != twenty
    full = {"full_clone": True}
    on_a = fingerprint(spec, settings_with(sizes={"small": {"storage": "a"}}, **full))
    assert on_a != fingerprint(spec, settings_with(sizes={"small": {"storage": "b"}}, **full))
