"""env_gateway (NET-2) on the scenario's lab: the policy is loaded, forwarding is on, only declared flows pass.

Every crossing is tried for real from inside a host, against a port that is listening, so a refusal can only
come from the gateway ("No route to host": ICMP administratively prohibited), never from a closed port.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "molecule" / "shared"))
from scenario import address, connect, hostvars, machine

TABLE = "provisioner_gateway"

testinfra_hosts = ["gateway"]


@pytest.fixture(scope="module")
def listeners():
    """Something listening on every port a probe below aims at, on its target host."""
    wanted = {("test-app1", 80), ("dev-app1", 80), ("prod-db1", 5432), ("test-app1", 22)}
    for name, port in wanted:
        if port == 22:
            continue  # sshd
        unit = f"molecule-listen-{port}"
        target = machine(name)
        target.run(f"systemctl stop {unit}; systemctl reset-failed {unit}")
        started = target.run(f"systemd-run --unit={unit} --property=RuntimeMaxSec=300 /usr/bin/nc -lk {port}")
        assert started.rc == 0, started.stderr
    for name, port in wanted:
        assert (
            machine(name).run(f"timeout 5 bash -c 'until ss -Hltn sport = :{port} | grep -q .; do sleep 0.1; done'").rc
            == 0
        )
    yield
    for name, port in wanted:
        if port != 22:
            machine(name).run(f"systemctl stop molecule-listen-{port}")


def test_policy_is_the_roles_ruleset(host):
    ruleset = host.run(f"nft list table inet {TABLE}")
    assert ruleset.rc == 0, ruleset.stderr
    assert 'comment "flow dev -> test"' in ruleset.stdout
    for pair in ("dev_to_prod", "test_to_prod", "dev_to_test", "prod_to_dev", "dev_to_mgmt"):
        assert f'counter name "deny_{pair}"' in ruleset.stdout
    for segment in ("dev", "test", "prod", "office"):
        assert f'counter name "spoofed_{segment}" drop' in ruleset.stdout
    for env in ("dev", "test"):
        assert f'comment "SSH from access network office to {env}"' in ruleset.stdout
    for pair in ("office_to_prod", "office_to_mgmt", "mgmt_to_office", "dev_to_office"):
        assert f'counter name "deny_{pair}"' in ruleset.stdout
    assert host.file("/etc/nftables.conf").contains("Ansible managed")


def test_replies_pass_only_between_declared_interfaces(host):
    forward = host.run(f"nft list chain inet {TABLE} forward").stdout
    established = [line.strip() for line in forward.splitlines() if "ct state established,related accept" in line]
    assert established and all(line.startswith('iifname "') and ' oifname "' in line for line in established)
    assert 'iifname "seg-dev" oifname "seg-test" ct state established,related accept' in forward
    assert 'iifname "seg-prod" oifname "seg-dev" ct state established,related accept' not in forward
    logged = [line for line in host.run(f"nft list table inet {TABLE}").stdout.splitlines() if " log prefix " in line]
    assert logged and all("limit rate" in line and "reject" not in line and "drop" not in line for line in logged)


def spoofed_packets(host, segment: str) -> int:
    out = host.run(f"nft -j list counter inet {TABLE} spoofed_{segment}").stdout
    return next(item["counter"]["packets"] for item in json.loads(out)["nftables"] if "counter" in item)


@pytest.mark.usefixtures("listeners")
def test_a_forged_source_is_dropped_on_its_leg(host):
    """dev-app1 sends from an address of production's prefix (added to it for the test) along the declared flow to
    test-app1:80: the gateway drops it as spoofed before anything else (no reply, no reject), and counts it."""
    source = machine("dev-app1")
    forged = str(ipaddress.ip_network(hostvars()["prod-db1"]["env_cidr"])[250])
    device = source.run(f"ip -o -4 addr show to {address('dev-app1')}").stdout.split()[1]
    before = spoofed_packets(host, "dev")
    assert source.run(f"ip addr add {forged}/32 dev {device}").rc == 0
    try:
        script = (
            "import socket; s = socket.socket(); s.settimeout(3); "
            f"s.bind(('{forged}', 0)); s.connect(('{address('test-app1')}', 80))"
        )
        attempt = source.run(f"python3 -c {shlex.quote(script)}")
        assert attempt.rc != 0 and "timed out" in attempt.stderr, attempt.stderr
    finally:
        source.run(f"ip addr del {forged}/32 dev {device}")
    assert spoofed_packets(host, "dev") > before
    genuine = connect("dev-app1", address("test-app1"), 80)
    assert genuine.rc == 0 and "connected" in genuine.stdout, "the same flow from dev's own address still passes"


def test_nftables_loads_the_policy_at_boot(host):
    nftables = host.service("nftables")
    assert nftables.is_enabled
    assert nftables.is_running


def test_forwarding_on_only_after_the_ruleset(host):
    dropin = host.file("/etc/systemd/system/nftables.service.d/provisioner-forwarding.conf")
    assert dropin.contains("ExecStartPost=/usr/sbin/sysctl -q -w net.ipv4.ip_forward=1")
    assert host.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    # what ansible.posix.sysctl records lies outside what systemd-sysctl applies at boot (before the ruleset)
    assert host.file("/etc/provisioner/gateway-forwarding.sysctl").contains("^net.ipv4.ip_forward=1$")
    boot = host.run("systemd-analyze cat-config sysctl.d")
    assert boot.rc == 0 and "/etc/sysctl.d/99-sysctl.conf" in boot.stdout, boot.stderr  # Debian's /etc/sysctl.conf
    settings = [line.replace(" ", "") for line in boot.stdout.splitlines() if not line.lstrip().startswith(("#", ";"))]
    assert not [line for line in settings if line.startswith(("net.ipv4.ip_forward=", "net/ipv4/ip_forward="))]


def test_gateway_has_one_leg_per_environment(host):
    links = host.run("ip -o -4 addr show").stdout
    for name in ("mgmt", "seg-dev", "seg-test", "seg-prod", "acc-office"):
        assert f" {name} " in links
    leg = next(line for line in links.splitlines() if " acc-office " in line)
    assert " 10.94.50.1/24 " in leg, "the gateway takes the access network's first usable address"


def _from_the_office(targets: list[tuple[str, int]]) -> dict[str, str]:
    """Connections from the controller's probe on the office access network (no machine is ever placed there):
    (address, port) -> connected | refused | rejected | timeout."""
    from provisioner.backends.network import names
    from provisioner.backends.network.probe_point import ProbePoint

    site = hostvars()["gateway"]["provisioner_site"]
    office = next(a for a in hostvars()["gateway"]["provisioner_access_networks"] if a["name"] == "office")
    network = ipaddress.ip_network(office["cidr"])
    point = ProbePoint(
        site, "office", f"{names.site_tag(site)}-office",
        ipaddress.ip_interface(f"{network.broadcast_address - 1}/{network.prefixlen}"),
        ipaddress.ip_address(office["gateway"]),
    )  # fmt: skip
    script = (
        "import errno, json, socket, sys\n"
        "out = {}\n"
        "for target, port in json.loads(sys.argv[1]):\n"
        "    s = socket.socket(); s.settimeout(4)\n"
        "    code = s.connect_ex((target, port)); s.close()\n"
        "    known = {0: 'connected', errno.ECONNREFUSED: 'refused', errno.EHOSTUNREACH: 'rejected',\n"
        "             errno.EAGAIN: 'timeout', errno.ETIMEDOUT: 'timeout'}\n"
        "    out[f'{target}:{port}'] = known.get(code, f'errno {code}')\n"
        "print(json.dumps(out))\n"
    )
    with point.attached():
        result = point.python(script, json.dumps(targets))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.usefixtures("listeners")
def test_the_office_reaches_dev_and_test_on_ssh_and_nothing_else(host):
    targets = [(address("dev-app1"), 22), (address("test-app1"), 22), (address("prod-db1"), 22),
               (address("test-app1"), 80), (address("prod-db1"), 5432),
               (hostvars()["dev-app1"]["env_gateway"], 22), ("10.94.0.1", 22)]  # fmt: skip
    seen = _from_the_office(targets)
    assert seen[f"{address('dev-app1')}:22"] == "connected" and seen[f"{address('test-app1')}:22"] == "connected"
    for target, port in targets[2:]:
        assert seen[f"{target}:{port}"] == "rejected", f"the office reached {target}:{port}: {seen}"


@pytest.mark.usefixtures("listeners")
def test_declared_flow_passes():
    result = connect("dev-app1", address("test-app1"), 80)
    assert result.rc == 0 and "connected" in result.stdout, result.stderr


@pytest.mark.usefixtures("listeners")
@pytest.mark.parametrize(
    ("source", "target", "port"),
    [
        ("dev-app1", "prod-db1", 5432),  # development into production: never
        ("test-app1", "prod-db1", 5432),  # test into production: never
        ("test-app1", "dev-app1", 80),  # the flow is one-way
        ("prod-db1", "dev-app1", 80),  # undeclared
        ("dev-app1", "test-app1", 22),  # the flow opens port 80 only
    ],
)
def test_undeclared_crossing_is_rejected_by_the_gateway(source, target, port):
    result = connect(source, address(target), port)
    assert result.rc != 0, f"{source} reached {target}:{port}"
    assert "No route to host" in result.stderr, result.stderr


@pytest.mark.usefixtures("listeners")
def test_denied_crossing_is_counted(host):
    def packets() -> int:
        out = host.run(f"nft -j list counter inet {TABLE} deny_dev_to_prod").stdout
        return next(item["counter"]["packets"] for item in json.loads(out)["nftables"] if "counter" in item)

    before = packets()
    connect("dev-app1", address("prod-db1"), 5432)
    assert packets() > before


def test_hosts_cannot_reach_the_gateway_itself():
    gateway_on_dev = hostvars()["dev-app1"]["env_gateway"]
    result = connect("dev-app1", gateway_on_dev, 22)
    assert result.rc != 0 and "No route to host" in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["dev-app1", "test-app1", "prod-db1"])
def test_management_network_reaches_every_host(name):
    with socket.create_connection((address(name), 22), timeout=5) as sock:
        assert sock.recv(4) == b"SSH-"
