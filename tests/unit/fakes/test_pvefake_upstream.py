"""Fidelity fixes the community Proxmox modules revealed (tests/peer), each as the upstream Perl source does it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("proxmoxer", reason="proxmoxer (the 'proxmox' extra) is not installed")
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks
from pvefake import FakePve

NODE = "pve1"


@pytest.fixture
def fake() -> Iterator[FakePve]:
    pve = FakePve(schema_version="9.1", node=NODE, task_seconds=0.02)
    pve.add_storage("local-lvm")
    pve.add_bridge("vmbr0")
    pve.add_template(9000)
    pve.start()
    yield pve
    pve.stop()


@pytest.fixture
def api(fake: FakePve) -> Any:
    return fake.client()


def failure(call: Any, *args: Any, **kwargs: Any) -> ResourceException:
    with pytest.raises(ResourceException) as caught:
        call(*args, **kwargs)
    return caught.value


def wait(api: Any, upid: str) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, timeout=10, polling_interval=0.02)
    assert status is not None
    return status


def test_sdn_numbers_are_numbers_subnets_have_ids_and_the_digest_is_the_files(api: Any) -> None:
    """SectionConfig check_value returns `$value + 0` for integer/boolean properties; sdn_subnets_config adds `id`;
    every object lists the digest of its whole file (SectionConfig assert_if_modified compares that one)."""
    sdn = api.cluster.sdn
    sdn.zones.post(zone="envs", type="vlan", bridge="vmbr0", mtu=1450)
    sdn.vnets.post(vnet="prod", zone="envs", tag=30, vlanaware=1)
    sdn.vnets.post(vnet="test", zone="envs", tag=31)
    sdn.vnets("prod").subnets.post(subnet="10.30.0.0/24", type="subnet", gateway="10.30.0.1", snat=1,
                                   **{"dhcp-range": "start-address=10.30.0.100,end-address=10.30.0.200"})  # fmt: skip
    assert sdn.zones.get()[0]["mtu"] == 1450
    prod = sdn.vnets("prod").get()
    assert (prod["tag"], prod["vlanaware"]) == (30, 1)
    digests = {v["digest"] for v in sdn.vnets.get()}
    assert len(digests) == 1, "one digest for the whole vnets.cfg"
    [subnet] = sdn.vnets("prod").subnets.get()
    assert (subnet["id"], subnet["subnet"], subnet["snat"]) == ("envs-10.30.0.0-24", "envs-10.30.0.0-24", 1)
    assert subnet["dhcp-range"] == [{"start-address": "10.30.0.100", "end-address": "10.30.0.200"}]
    sdn.vnets("test").put(alias="t", digest=digests.pop())
    stale = failure(sdn.vnets("prod").put, alias="p", digest=prod["digest"])
    assert "detected modified configuration" in stale.content


def test_cluster_aliases_and_rules_that_name_them(api: Any) -> None:
    """Aliases.pm: kept by lower-case name, listed sorted with ipversion; verify_rule looks aliases up and sets
    the rule's ipversion from them; a missing alias is refused, deleting one is never an error."""
    fw = api.cluster.firewall
    fw.aliases.post(name="Office", cidr="192.0.2.0/24", comment="LAN")
    fw.aliases.post(name="v6net", cidr="2001:db8::/64")
    assert failure(fw.aliases.post, name="office", cidr="198.51.100.0/24").errors == {
        "name": "alias 'office' already exists"
    }
    listed = fw.aliases.get()
    assert [(a["name"], a["ipversion"]) for a in listed] == [("Office", 4), ("v6net", 6)]
    assert fw.aliases("OFFICE").get()["cidr"] == "192.0.2.0/24"
    fw.rules.post(type="in", action="ACCEPT", source="office", proto="tcp", dport="22", enable=1)
    assert fw.rules.get()[0]["ipversion"] == 4
    assert failure(fw.rules.post, type="in", action="ACCEPT", source="ghost").errors == {
        "source": "no such alias 'ghost'"
    }
    assert (
        "mixed ipv4/ipv6" in failure(fw.rules.post, type="in", action="ACCEPT", source="office", dest="v6net").content
    )
    assert failure(fw.aliases("ghost").get).errors == {"name": "no such alias"}
    fw.aliases("ghost").delete()
    fw.aliases("v6net").delete()
    assert [a["name"] for a in fw.aliases.get()] == ["Office"]


def test_a_referenced_empty_security_group_is_deleted(api: Any) -> None:
    """Groups.pm delete_security_group refuses only a group with rules."""
    fw = api.cluster.firewall
    fw.groups.post(group="legacy")
    fw.rules.post(type="group", action="legacy", enable=1)
    fw.groups("legacy").delete()
    assert fw.groups.get() == []
    assert fw.rules.get()[0]["action"] == "legacy", "the rule stays (the compiler skips it)"
    fw.groups.post(group="full")
    fw.groups("full").post(type="in", action="DROP")
    assert failure(fw.groups("full").delete).content == "Security group 'full' is not empty"


def test_ip_set_entries_missing_read_is_a_parameter_error_and_removal_is_silent(api: Any) -> None:
    """IPSet.pm: read_ip/update_ip raise_param_exc(cidr => 'no such IP/Network'); remove_ip keeps the others."""
    fw = api.cluster.firewall
    fw.ipset.post(name="admins")
    fw.ipset("admins").post(cidr="10.0.0.5")
    missing = failure(fw.ipset("admins")("10.0.0.9").get)
    assert (missing.status_code, missing.errors) == (400, {"cidr": "no such IP/Network"})
    fw.ipset("admins")("10.0.0.9").delete()
    assert [e["cidr"] for e in fw.ipset("admins").get()] == ["10.0.0.5"]


def test_vnet_firewall_takes_forward_rules_only(api: Any) -> None:
    """Firewall.pm rule_env_direction_lookup: a VNet's rules are `forward` or `group`."""
    api.cluster.sdn.zones.post(zone="zone1", type="simple")
    api.cluster.sdn.vnets.post(vnet="v1", zone="zone1")
    rules = api.cluster.sdn.vnets("v1").firewall.rules
    rules.post(type="forward", action="ACCEPT", dest="10.1.0.0/24", enable=1)
    assert rules.get()[0]["ipversion"] == 4
    assert failure(rules.post, type="in", action="ACCEPT").errors == {
        "type": "invalid rule type 'in' for rule_env 'vnet'"
    }
    assert "does not exist" in failure(api.cluster.sdn.vnets("nope").firewall.rules.get).content


def test_storage_size_on_update_allocates_a_volume(fake: FakePve, api: Any) -> None:
    """qemu-server create_disks: `STORAGE:SIZE` becomes the next free vm-<vmid>-disk-N (pve-storage
    find_free_diskname), `format` dropped; `STORAGE:cloudinit` becomes vm-<vmid>-cloudinit."""
    wait(api, api.nodes(NODE).qemu(9000).clone.post(newid=102, full=1))
    qemu = api.nodes(NODE).qemu(102)
    qemu.config.put(scsi1="local-lvm:4,format=raw,backup=0", ide2="none,media=cdrom")
    qemu.config.put(ide0="local-lvm:cloudinit")
    config = fake.state.vms[102].config
    assert config["scsi1"] == "local-lvm:vm-102-disk-1,backup=0,size=4G"
    assert config["ide0"] == "local-lvm:vm-102-cloudinit,media=cdrom"


def test_resize_grows_refuses_to_shrink_and_snapshots_list_current_last(fake: FakePve, api: Any) -> None:
    """Qemu.pm resize_vm (a `resize` worker) and snapshot_list (`current` last, reserved names)."""
    wait(api, api.nodes(NODE).qemu(9000).clone.post(newid=102, full=1))
    qemu = api.nodes(NODE).qemu(102)
    assert wait(api, qemu.resize.put(disk="scsi0", size="+4G"))["exitstatus"] == "OK"
    assert "size=12G" in fake.state.vms[102].config["scsi0"]
    assert wait(api, qemu.resize.put(disk="scsi0", size="10G"))["exitstatus"] == "shrinking disks is not supported"
    assert wait(api, qemu.resize.put(disk="scsi9", size="10G"))["exitstatus"] == "disk 'scsi9' does not exist"
    assert wait(api, qemu.snapshot.post(snapname="s1", description="first"))["exitstatus"] == "OK"
    listed = qemu.snapshot.get()
    assert [s["name"] for s in listed] == ["s1", "current"] and listed[-1]["parent"] == "s1"
    assert "reserved name" in failure(qemu.snapshot.post, snapname="current").content
    assert wait(api, qemu.snapshot("s1").delete())["exitstatus"] == "OK"
    assert [s["name"] for s in qemu.snapshot.get()] == ["current"]


def test_storage_content_lists_each_guest_volume_once_to_whom_may_see_it(fake: FakePve, api: Any) -> None:
    """Content.pm index over volume_list, filtered by check_volume_access: Datastore.Allocate on the storage, or
    Datastore.Audit there and VM.Config.Disk on the volume's owner."""
    wait(api, api.nodes(NODE).qemu(9000).clone.post(newid=101, name="web"))
    listed = api.nodes(NODE).storage("local-lvm").content.get()
    by_volid = {v["volid"]: v for v in listed}
    assert by_volid["local-lvm:base-9000-disk-0"] == {
        "volid": "local-lvm:base-9000-disk-0", "format": "raw", "size": 8 << 30, "content": "images", "vmid": 9000,
    }  # fmt: skip
    clone = [v for v in listed if v.get("vmid") == 101]
    assert clone and all(v["content"] == "images" for v in clone), listed
    assert len(by_volid) == len(listed), "each volume once"
    assert api.nodes(NODE).storage("local-lvm").content.get(vmid=101) == clone
    assert api.nodes(NODE).storage("local-lvm").content.get(content="iso") == []
    fake.add_user("auditor@pve")
    fake.add_acl("/storage/local-lvm", "PVEAuditor", user="auditor@pve")
    fake.add_acl("/vms/101", "PVEVMAdmin", user="auditor@pve")
    seen = fake.client("auditor@pve", "look").nodes(NODE).storage("local-lvm").content.get()
    assert {v.get("vmid") for v in seen} == {101}, "only the volumes of a VM it may configure the disks of"


def test_the_task_index_lists_user_and_token_apart(api: Any) -> None:
    """Tasks.pm converts every listed task with convert_token_task, as it does the status."""
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=102, name="db")
    wait(api, upid)
    (listed,) = [t for t in api.nodes(NODE).tasks.get() if t["upid"] == upid]
    assert (listed["user"], listed["tokenid"]) == ("root@pam", "provisioner"), listed


def test_the_builtin_pve_ipam_is_listed_and_its_status_read(api: Any) -> None:
    """ipams.cfg ships `pve`; the status lists allocations of zones with DHCP only (none here)."""
    assert api.cluster.sdn.ipams.get() == [{"ipam": "pve", "type": "pve"}]
    assert api.cluster.sdn.ipams("pve").get()["type"] == "pve"
    assert api.cluster.sdn.ipams("pve").status.get() == []
    assert "does not exist" in failure(api.cluster.sdn.ipams("netbox1").get).content
