"""The cloud-init NoCloud seed of one guest: hostname, the automation account, its SSH host key, static addresses.

The host key is made on the controller (provisioner.workspace.hostkeys) so known_hosts is pinned before first boot,
exactly as in the LXC lab. The seed is an ISO 9660 image labelled `cidata`, attached read-only.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from provisioner.controller.shell import run
from provisioner.workspace.site_state import AUTOMATION_USER


@dataclass(frozen=True)
class SeedNic:
    name: str  # interface name inside the guest
    mac: str
    address: str  # a.b.c.d/prefix
    gateway: str | None


@dataclass(frozen=True)
class SeedFile:
    path: str
    content: str
    permissions: str = "0644"


@dataclass(frozen=True)
class Seed:
    instance_id: str
    hostname: str
    controller_key: str
    host_key_private: str
    host_key_public: str
    nics: tuple[SeedNic, ...]
    files: tuple[SeedFile, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()


def user_data(seed: Seed) -> str:
    data: dict[str, object] = {
        "hostname": seed.hostname,
        "users": [
            {
                "name": AUTOMATION_USER,
                "gecos": "provisioner automation",
                "shell": "/bin/bash",
                "lock_passwd": True,
                "sudo": "ALL=(ALL:ALL) NOPASSWD: ALL",
                "ssh_authorized_keys": [seed.controller_key],
            }
        ],
        "ssh_keys": {"ed25519_private": seed.host_key_private, "ed25519_public": seed.host_key_public},
    }
    if seed.files:
        data["write_files"] = [{"path": f.path, "content": f.content, "permissions": f.permissions} for f in seed.files]
    if seed.commands:
        data["runcmd"] = [list(c) for c in seed.commands]
    return "#cloud-config\n" + yaml.safe_dump(data, sort_keys=False)


def meta_data(seed: Seed) -> str:
    return yaml.safe_dump({"instance-id": seed.instance_id, "local-hostname": seed.hostname}, sort_keys=False)


def network_config(seed: Seed) -> str:
    ethernets: dict[str, object] = {}
    for nic in seed.nics:
        entry: dict[str, object] = {"match": {"macaddress": nic.mac}, "set-name": nic.name, "addresses": [nic.address]}
        if nic.gateway:
            entry["gateway4"] = nic.gateway
        ethernets[nic.name] = entry
    return yaml.safe_dump({"version": 2, "ethernets": ethernets}, sort_keys=False)


def build_iso(seed: Seed) -> bytes:
    with tempfile.TemporaryDirectory(prefix="provisioner-seed-") as tmp:
        folder = Path(tmp) / "cidata"
        folder.mkdir()
        (folder / "user-data").write_text(user_data(seed))
        (folder / "meta-data").write_text(meta_data(seed))
        (folder / "network-config").write_text(network_config(seed))
        iso = Path(tmp) / "seed.iso"
        run(["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock", str(folder)])
        return iso.read_bytes()
