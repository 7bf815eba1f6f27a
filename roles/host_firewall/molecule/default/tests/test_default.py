"""host_firewall (NET-3) on the scenario's lab: inbound dropped by default, SSH only from the management network
and the access network that reaches production (the admins'), each service port only from its declared sources.
Probes run inside one segment (prod), where the gateway is not in the path, against ports that are listening: a
refusal can only come from the target's own firewall.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "molecule" / "shared"))
from scenario import address, connect, hostvars, machine

TABLE = "provisioner_host"

testinfra_hosts = ["prod-app1", "prod-db1", "prod-work1"]


def accepts(ruleset: str, sources: list[str], port: int) -> bool:
    """Whether `ruleset` (as `nft list` prints it) accepts exactly `sources` on tcp `port`."""
    printed = "|".join(re.escape(s) for s in sources)
    single = rf"ip saddr (?:{printed}) tcp dport {port} accept"
    several = rf"ip saddr \{{ (?:(?:{printed})(?:, )?)+ \}} tcp dport {port} accept"
    return re.search(single if len(sources) == 1 else several, ruleset) is not None


LISTEN = {("prod-db1", 5432), ("prod-app1", 80), ("prod-work1", 8080)}


@pytest.fixture(scope="module")
def listeners():
    for name, port in LISTEN:
        unit = f"molecule-listen-{port}"
        target = machine(name)
        target.run(f"systemctl stop {unit}; systemctl reset-failed {unit}")
        started = target.run(f"systemd-run --unit={unit} --property=RuntimeMaxSec=300 /usr/bin/nc -lk {port}")
        assert started.rc == 0, started.stderr
        ready = target.run(f"timeout 5 bash -c 'until ss -Hltn sport = :{port} | grep -q .; do sleep 0.1; done'")
        assert ready.rc == 0
    yield
    for name, port in LISTEN:
        machine(name).run(f"systemctl stop molecule-listen-{port}")


def test_ruleset_loaded_with_default_drop(host):
    ruleset = host.run(f"nft list table inet {TABLE}")
    assert ruleset.rc == 0, ruleset.stderr
    assert "type filter hook input priority filter; policy drop;" in ruleset.stdout
    management = hostvars()[host.backend.get_hostname()]["provisioner_management_cidr"]
    # SSH from management and the admins' access network (which reaches production); never the developers' office
    assert accepts(ruleset.stdout, [management, "10.94.60.0/28"], 22)
    assert "10.94.50.0/24" not in ruleset.stdout


def test_nftables_enabled_and_running(host):
    assert host.service("nftables").is_enabled
    assert host.service("nftables").is_running


def test_declared_service_sources_in_the_ruleset():
    ruleset = machine("prod-db1").run(f"nft list table inet {TABLE}").stdout
    # in production the database accepts only the environment's app hosts
    assert accepts(ruleset, [address("prod-app1")], 5432)


@pytest.mark.usefixtures("listeners")
def test_app_host_reaches_the_database():
    result = connect("prod-app1", address("prod-db1"), 5432)
    assert result.rc == 0 and "connected" in result.stdout, result.stderr


@pytest.mark.usefixtures("listeners")
@pytest.mark.parametrize(
    ("source", "target", "port"),
    [
        ("prod-work1", "prod-db1", 5432),  # not an app host
        ("prod-db1", "prod-work1", 8080),  # a worker serves nothing: no port is open
        ("prod-app1", "prod-db1", 22),  # SSH only from the management network
        ("prod-db1", "prod-app1", 22),
    ],
)
def test_undeclared_inbound_is_rejected(source, target, port):
    result = connect(source, address(target), port)
    assert result.rc != 0, f"{source} reached {target}:{port}"
    assert "No route to host" in result.stderr, result.stderr


@pytest.mark.usefixtures("listeners")
def test_app_port_open_inside_its_environment():
    result = connect("prod-db1", address("prod-app1"), 80)
    assert result.rc == 0 and "connected" in result.stdout, result.stderr


@pytest.mark.parametrize("name", ["prod-app1", "prod-db1", "prod-work1"])
def test_management_network_keeps_ssh(name):
    with socket.create_connection((address(name), 22), timeout=5) as sock:
        assert sock.recv(4) == b"SSH-"
