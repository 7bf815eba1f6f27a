"""The fake Proxmox's LXC realizer, driven directly: SDN bridges, a VM that SSH reaches, restart, destroy, cleanup.

Lab ids "pvr9" and "pvr8", addresses in 10.99.0.0/16 only: nothing here collides with a demo or another lab.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import lab_prerequisites_missing
from pvefake import realize, realize_lxc

from provisioner.backends.lxc import base_image, containers
from provisioner.backends.network import links

pytestmark = [
    pytest.mark.lab,
    pytest.mark.proxmox_lab,
    pytest.mark.skipif(lab_prerequisites_missing() is not None, reason=str(lab_prerequisites_missing())),
]


LAB = "pvr9"
CONTROLLER = "10.99.0.1"
GATEWAY = "10.99.0.254"
SSH_WAIT = 60


def vnets() -> dict:
    return {
        "rmgmt": realize.VnetInfo("rmgmt", "rzone", 99, "vmbr0", [("10.99.0.0/24", GATEWAY)]),
        "rdev": realize.VnetInfo("rdev", "rzone", 98, "vmbr0", [("10.99.1.0/24", "10.99.1.254")]),
    }


def vm(vmid: int, name: str, ipconfig: str, public_key: str, ciuser: str | None = "provision", bridge: str = "rmgmt"):
    nic = realize.NicInfo(0, bridge, f"BC:24:11:99:00:{vmid % 100:02X}", True, None)
    return realize.VmInfo(
        vmid=vmid,
        name=name,
        nics=[nic],
        ipconfig={0: ipconfig},
        ciuser=ciuser,
        sshkeys=public_key + "\n",
        nameserver=GATEWAY,
        cores=1,
        memory=512,
        tags=[],
        agent=True,
    )


def ssh(key: Path, user: str, address: str, command: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
    return subprocess.run(
        ["ssh", *options, "-o", "ConnectTimeout=3", "-i", str(key), f"{user}@{address}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_ssh(key: Path, user: str, address: str) -> str:
    deadline = time.monotonic() + SSH_WAIT
    while True:
        result = ssh(key, user, address, "hostname")
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, f"ssh {user}@{address}: {result.stderr}"
            return result.stdout.strip()
        time.sleep(0.3)


def leftovers(lab: str) -> list[str]:
    """Every host resource that still carries the lab's prefix or labels."""
    found = [
        f"link {link.name}"
        for link in links.list_links()
        if link.name.startswith(f"{lab}-") or link.labels.get("lab") == lab
    ]
    found += [f"container {path.name}" for path in base_image.lxc_path().glob(f"{lab}-*")]
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout)
    found += [f"route {r['dst']} dev {r.get('dev')}" for r in routes if r["dst"].startswith("10.99.")]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found += [f"nft {line}" for line in tables.splitlines() if f"pvefake_{lab}" in line]
    return found


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pvr-key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture
def realizer():
    realize_lxc.cleanup_lab(LAB)  # whatever a crashed earlier run left
    made = realize_lxc.LxcRealizer(LAB, controller=CONTROLLER)
    yield made
    made.close()


def test_a_started_vm_is_a_container_ssh_reaches(realizer, key: Path) -> None:
    assert isinstance(realizer, realize.Realizer)
    public = key.with_suffix(".pub").read_text().strip()
    realizer.sdn_applied(vnets())
    mgmt = "pvr9-rmgmt"
    assert {"pvr9-rmgmt", "pvr9-rdev"} <= {link.name for link in links.list_links()}
    assert f"{CONTROLLER}/24" in links.addresses(mgmt)
    assert links.routes_via(mgmt) == {"10.99.1.0/24": GATEWAY}
    realizer.sdn_applied(vnets())  # idempotent
    assert links.routes_via(mgmt) == {"10.99.1.0/24": GATEWAY}

    # two VMs start at once, one with a cloud-init user the base image does not have
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        starts = [
            pool.submit(realizer.vm_started, vm(9101, "pvrweb", f"ip=10.99.0.10/24,gw={GATEWAY}", public)),
            pool.submit(realizer.vm_started, vm(9102, "pvrops", f"ip=10.99.0.11/24,gw={GATEWAY}", public, "ops")),
        ]
        for future in starts:
            future.result()
    assert wait_for_ssh(key, "provision", "10.99.0.10") == "pvrweb"
    assert wait_for_ssh(key, "ops", "10.99.0.11") == "pvrops"
    print(f"two VMs answered SSH {time.monotonic() - started:.1f}s after their start")
    assert ssh(key, "ops", "10.99.0.11", "sudo -n true").returncode == 0
    assert ssh(key, "provision", "10.99.0.10", "cat /etc/resolv.conf").stdout == f"nameserver {GATEWAY}\n"
    assert ssh(key, "provision", "10.99.0.10", "stat -c %a .ssh/authorized_keys").stdout.strip() == "600"

    # the guest agent sees the host key SSH presents
    assert realizer.agent_running(9101)
    scanned = subprocess.run(
        ["ssh-keyscan", "-t", "ed25519", "10.99.0.10"], capture_output=True, text=True, check=True
    ).stdout.split()
    host_key = realizer.agent_file_read(9101, "/etc/ssh/ssh_host_ed25519_key.pub").split()
    assert host_key[:2] == scanned[1:3]
    with pytest.raises(FileNotFoundError, match="No such file"):
        realizer.agent_file_read(9101, "/no/such/file")
    with pytest.raises(realize.AgentError, match="No such file"):  # what the fake maps to `Agent error: ...`
        realizer.agent_file_read(9101, "/no/such/file")

    # stop keeps the container; a restart brings it back with the same identity
    realizer.vm_stopped(9101)
    assert not realizer.agent_running(9101)
    assert (base_image.lxc_path() / "pvr9-9101").is_dir()
    realizer.vm_started(vm(9101, "pvrweb", f"ip=10.99.0.10/24,gw={GATEWAY}", public))
    assert wait_for_ssh(key, "provision", "10.99.0.10") == "pvrweb"
    assert realizer.agent_file_read(9101, "/etc/ssh/ssh_host_ed25519_key.pub").split()[:2] == host_key[:2]

    # a NIC on a bridge that is not a VNet fails the start, as on Proxmox
    bad = vm(9103, "pvrbad", "ip=10.99.0.12/24", public, bridge="nosuch")
    with pytest.raises(realize_lxc.RealizeError, match="bridge 'nosuch' does not exist"):
        realizer.vm_started(bad)

    # a VNet removed from SDN loses its bridge; the controller keeps only routes that still exist
    realizer.sdn_applied({"rmgmt": vnets()["rmgmt"]})
    assert "pvr9-rdev" not in {link.name for link in links.list_links()}
    assert links.routes_via(mgmt) == {}

    realizer.vm_destroyed(9101)
    assert not (base_image.lxc_path() / "pvr9-9101").exists()
    assert not realizer.agent_running(9101)
    realizer.close()
    assert leftovers(LAB) == []


def test_cleanup_lab_removes_what_a_crashed_run_left(key: Path) -> None:
    realize_lxc.cleanup_lab("pvr8")
    crashed = realize_lxc.LxcRealizer("pvr8", controller="10.99.8.1")
    crashed.sdn_applied(
        {
            "r8mgmt": realize.VnetInfo("r8mgmt", "rzone", 97, "vmbr0", [("10.99.8.0/24", "10.99.8.254")]),
            "r8dev": realize.VnetInfo("r8dev", "rzone", 96, "vmbr0", [("10.99.9.0/24", "10.99.9.254")]),
        }
    )
    public = key.with_suffix(".pub").read_text().strip()
    info = vm(9801, "pvrcrash", "ip=10.99.8.10/24,gw=10.99.8.254", public, bridge="r8mgmt")
    crashed.vm_started(info)
    assert containers.is_running("pvr8-9801")
    assert leftovers("pvr8") != []
    realize_lxc.cleanup_lab("pvr8")  # no close(): as if the fake had died
    assert leftovers("pvr8") == []
