"""A client we did not write: the community Proxmox modules (the `ansible` package's community.proxmox) against
the fake, each playbook run twice on a fresh fake.

The first run's effects are read back from the fake's state; the second run must report `changed=false` for every
task except the ones listed in EXCEPTIONS, where the module itself reports a change on every run against a real
Proxmox VE as well (each with the reason, from the module's source):

- proxmox_kvm with `update: true` (cloud-init of web1, protection of db1): it PUTs the config and exits
  `changed=True` without comparing anything.
- proxmox_user `bob@pve` with `groups: [ops, auditors]`: the module compares the groups joined in the order given
  with the list PVE returns, which pve-access-control sorts (API2/User.pm read_user: `sort keys`); a list not in
  sorted order is "updated" on every run. The fake sorting them as PVE does is what makes this task change.
- proxmox_snap, proxmox_disk (state present and resized) are idempotent: their second run changes nothing. (Given
  `format`, proxmox_disk would "update" the disk on every run: qemu-server drops `format` from the config once the
  volume exists, Qemu.pm create_disks, so the module never finds it again.)

Tasks the first run leaves unchanged by design (removing what is not there, reading back, a refusal expected) are
named in each scenario's `first_unchanged`.

The modules' requests are validated by the fake against the official 9.1 schema (the SDN modules need PVE 9's
global SDN lock, which 8.4 lacks). The peer virtualenv is made once per machine (tests/support/peer_venv.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import peer_venv
import pytest
from peer_run import TOKEN, TaskResult, run_playbook
from pvefake import FakePve

pytestmark = pytest.mark.peer

TEMPLATE = 9000


@pytest.fixture(scope="session")
def venv() -> Path:
    return peer_venv.ensure()


@pytest.fixture
def fake() -> Iterator[FakePve]:
    pve = FakePve(schema_version="9.1", node="pve1", task_seconds=0.05)
    pve.add_storage("local")
    pve.add_storage("local-lvm")
    pve.add_bridge("vmbr0")
    pve.add_template(TEMPLATE, name="debian12-cloud")
    pve.start()
    yield pve
    pve.stop()


def _setup_nothing(fake: FakePve) -> None:
    pass


def _setup_firewall(fake: FakePve) -> None:
    """An empty group that a cluster rule still names: pve-firewall deletes it all the same."""
    api = fake.client()
    api.cluster.firewall.groups.post(group="legacy")
    api.cluster.firewall.rules.post(type="group", action="legacy", enable=1)


def _check_access(fake: FakePve, first: list[TaskResult]) -> None:
    state = fake.state
    assert sorted(state.groups) == ["auditors", "ops"]
    assert state.groups["ops"].members == {"alice@pve", "bob@pve"}
    assert state.groups["auditors"].members == {"bob@pve"}
    alice = state.users["alice@pve"]
    assert (alice.email, alice.firstname, alice.lastname, alice.enable) == (
        "alice@example.org",
        "Alice",
        "Example",
        True,
    )
    assert state.pools["prod"].comment == "Production" and "local-lvm" in state.pools["prod"].storage
    assert state.pools["test"].vms == {TEMPLATE}
    acls = {(k.path, k.type, k.ugid, k.roleid): v for k, v in state.acls.items()}
    assert acls[("/pool/prod", "group", "ops", "PVEVMAdmin")] is True
    assert acls[("/", "user", "bob@pve", "PVEAuditor")] is False
    assert acls[("/storage/local-lvm", "group", "ops", "PVEDatastoreUser")] is True


def _check_sdn(fake: FakePve, first: list[TaskResult]) -> None:
    running = fake.state.sdn.running  # each module applies its change (PUT /cluster/sdn) under the lock
    assert running.zones["envs"] == {"type": "vlan", "bridge": "vmbr0", "mtu": 1450}
    assert running.vnets["prod"] == {
        "zone": "envs",
        "tag": 30,
        "alias": "production",
        "type": "vnet",
        "isolate-ports": 0,
    }
    assert running.vnets["test"]["isolate-ports"] == 1
    assert running.subnets["envs-10.30.0.0-24"]["gateway"] == "10.30.0.1"
    assert running.subnets["lab-10.99.0.0-24"]["snat"] == 1
    assert fake.state.sdn.lock_token is None, "every module released the global lock"
    rules = fake.state.firewall.vnet_rules["prod"]
    assert rules == [{"type": "forward", "action": "ACCEPT", "proto": "tcp", "dport": "5432",
                      "dest": "10.30.0.0/24", "enable": 1, "ipversion": 4}]  # fmt: skip


def _check_firewall(fake: FakePve, first: list[TaskResult]) -> None:
    fw = fake.state.firewall
    assert sorted(fw.groups) == ["web"], "the referenced empty group 'legacy' is gone"
    assert [(r["dport"], r.get("source")) for r in fw.groups["web"].rules] == [("443", None), ("22", "+dc/admins")]
    entries = {e["cidr"]: (e.get("comment"), e.get("nomatch", 0)) for e in fw.ipsets["admins"].entries}
    assert entries == {"10.10.0.5": ("alice", 0), "10.10.0.0/28": (None, 1)}
    assert fw.aliases["office"] == {"name": "office", "cidr": "192.0.2.0/24", "ipversion": 4, "comment": "Office LAN"}
    office = [r for r in fw.cluster_rules if r.get("source") == "office"]
    assert office and office[0]["dport"] == "8006" and office[0]["ipversion"] == 4


def _check_vms(fake: FakePve, first: list[TaskResult]) -> None:
    web1, db1 = fake.state.vms[101].config, fake.state.vms[102].config
    assert web1["scsi0"].startswith(f"local-lvm:base-{TEMPLATE}-disk-0/vm-101-disk-0"), "linked clone"
    assert db1["scsi0"].startswith("local-lvm:vm-102-disk-0"), "full clone"
    assert 101 in fake.state.pools["prod"].vms
    assert (web1["ciuser"], web1["ipconfig0"], web1["citype"]) == ("deploy", "ip=10.30.0.11/24,gw=10.30.0.1", "nocloud")
    assert (web1["nameserver"], web1["searchdomain"]) == ("10.30.0.1", "example.org")
    assert db1["protection"] == "1" and 102 in fake.state.vms, "protection refused the removal"
    assert db1["scsi1"] == "local-lvm:vm-102-disk-1,size=4G", "STORAGE:SIZE allocates a volume"
    assert "size=12G" in db1["scsi0"]
    assert "before-upgrade" in fake.state.vms[102].snapshots


@dataclass(frozen=True)
class Scenario:
    playbook: str
    setup: Callable[[FakePve], None]
    check: Callable[[FakePve, list[TaskResult]], None]
    always_changed: frozenset[str] = frozenset()  # tasks the module reports changed on every run (docstring)
    first_unchanged: frozenset[str] = frozenset()  # tasks with nothing to change on the first run either


SCENARIOS = [
    Scenario(
        "access.yml", _setup_nothing, _check_access,
        always_changed=frozenset({"User bob in ops and auditors"}),
        first_unchanged=frozenset({"Group old-team is absent"}),
    ),
    Scenario(
        "sdn.yml", _setup_nothing, _check_sdn,
        first_unchanged=frozenset(
            {
                "Zones read back",
                "VNets read back",
                "The zones and VNets as the modules see them",
                "The PVE IPAM read back",
                "No allocation in zones without DHCP",
            }
        ),
    ),
    Scenario(
        "firewall.yml", _setup_firewall, _check_firewall,
        first_unchanged=frozenset({"An IP set entry that never existed, removed", "Firewall read back"}),
    ),
    Scenario(
        "vms.yml", _setup_nothing, _check_vms,
        always_changed=frozenset({"Cloud-init of web1", "Protection of db1"}),
        first_unchanged=frozenset(
            {
                "Protected db1 cannot be removed",
                "The disks of db1 as the storage lists them",
                "The data disk is db1's and the root disk has its new size",
            }
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.playbook.removesuffix(".yml"))
def test_community_modules_twice(venv: Path, fake: FakePve, scenario: Scenario, tmp_path: Path) -> None:
    scenario.setup(fake)
    secret = fake.add_token(*TOKEN)
    first = run_playbook(venv, scenario.playbook, fake, secret, tmp_path / "first")
    unchanged = {r.name for r in first if not r.changed}
    assert unchanged == set(scenario.first_unchanged), "\n".join(map(str, first))
    scenario.check(fake, first)

    second = run_playbook(venv, scenario.playbook, fake, secret, tmp_path / "second")
    changed = {r.name for r in second if r.changed}
    assert changed == set(scenario.always_changed), "\n".join(map(str, second))
