"""Shared by the backend unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pvecontract import keep
from pvefake import FakePve


@pytest.fixture(autouse=True)
def _quick_firewall_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake loads firewall rules at once, where pve-firewall takes up to 10 s: the new connections after the
    datacenter firewall is switched on are tried for a fraction of a second here (several tries all the same)."""
    monkeypatch.setattr("provisioner.backends.proxmox.enforcement.SETTLE_SECONDS", 0.3)


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakePve]:
    """A fake Proxmox node pve1 with storage local-lvm, bridge vmbr0 and template 9000; the backend's token secret
    in PROVISION_PVE_TOKEN. Every request it answered is kept for the contract report. PVE 9.1, or the version a
    test asks for (`parametrize("fake", ["8.4"], indirect=True)`)."""
    server = FakePve(schema_version=getattr(request, "param", "9.1"), node="pve1", task_seconds=0.05)
    server.start()
    server.add_storage("local-lvm")
    server.add_bridge("vmbr0")
    server.add_template(9000, name="debian12-cloud")
    os.environ["PROVISION_PVE_TOKEN"] = server.add_token("root@pam", "provisioner", privsep=False)
    yield server
    keep(server)
    server.stop()
