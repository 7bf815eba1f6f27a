"""`provision verify` on a real lab: it passes, then fails with the right control ID for each planted fault.

Faults are planted one at a time and repaired before the next, so each verify run isolates one control.
"""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import DEMO_KEYS, verify_keys
from probes import in_container, tcp_connect

from provisioner.backends import backend_for
from provisioner.backends.lxc import base_image, containers, idmap
from provisioner.conformance import escape_probe
from provisioner.conformance.controls import CONTROLS
from provisioner.site import policy

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(900)]

KEYS = DEMO_KEYS
SUITE_CONTROLS = {
    "NET-1", "NET-2", "NET-3", "ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5", "CUE-1", "CUE-2", "LOG-1",
    "DATA-1", "DATA-2", "DATA-3", "HYP-1",
}  # fmt: skip
# the path to live: on a lab without releases they pass on an empty, verifying ledger and hosts without release files
SUITE_CONTROLS |= {"CHG-1", "CHG-2", "CHG-3", "CHG-4"}
# read back from a hypervisor's accounts: the LXC lab has none, so these checks report a skip with the reason
HYPERVISOR_CONTROLS = {"ACC-6"}


def verify(lab) -> tuple[int, dict]:
    result = lab.cli("verify", str(lab.site_file), "--keys", str(verify_keys()), "--json")
    assert result.stdout, result.stderr
    return result.rc, result.json


def failed_controls(data: dict) -> set[str]:
    return {cid for cid, counts in data["controls"].items() if counts["fail"]}


def container(lab, host: str) -> str:
    return f"{lab.site.name}-{host}"


def test_verify_passes_every_check_on_the_lab(lab):
    rc, data = verify(lab)
    assert rc == 0, json.dumps(data["failures"], indent=1)[:4000]
    assert set(data["controls"]) == SUITE_CONTROLS | HYPERVISOR_CONTROLS
    for cid, counts in data["controls"].items():
        if cid in HYPERVISOR_CONTROLS:
            assert counts == {"pass": 0, "fail": 0, "skip": counts["skip"]} and counts["skip"] > 0, (cid, counts)
        else:
            assert counts["pass"] > 0 and counts["fail"] == 0, (cid, counts)
    run_dir = Path(data["run_dir"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"] == run_dir.name, "the signed results name their run"
    allowed = run_dir.parent / "allowed_signers.test"
    allowed.write_text(f"evidence@{lab.site.name} {(lab.state.signing_dir / 'evidence_ed25519.pub').read_text()}")
    signed = subprocess.run(
        f"ssh-keygen -Y verify -f {allowed} -I evidence@{lab.site.name} -n provision-results "
        "-s results.json.sig < results.json",
        shell=True, cwd=run_dir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    allowed.unlink()
    assert signed.returncode == 0, "verify signed its results.json: " + signed.stderr
    assert set(results["controls"]) >= SUITE_CONTROLS
    for row in results["results"]:
        assert row["control"] in CONTROLS and row["time"] and row["status"] in ("pass", "skip")
        if row["status"] == "pass":
            assert row["expected"], f"{row['check']} records what it expected"
    matrix = [r for row in results["results"] if row["control"] == "NET-2" for r in row["rows"]]
    assert {(r["source_env"], r["destination_env"]) for r in matrix} >= {("dev", "prod"), ("test", "prod")}
    tcp = [r for r in matrix if isinstance(r["port"], int)]
    assert all(r["observed"] == "rejected" for r in tcp if r["destination_env"] == "prod")
    gateways = {e.name: str(e.segment.gateway) for e in lab.site.model.environments}
    gateways |= {a.name: str(a.gateway_address) for a in lab.site.model.access_networks}
    udp = [r for r in matrix if r["port"] == "9/udp"]
    assert udp and all(r["observed"] == f"icmp-from:{gateways[r['source_env']]}" for r in udp), udp
    assert all(r["icmp"] == "ICMP type 3 code 13" for r in udp), "the gateway's reject: administratively prohibited"
    assert any(r["expected"] == "open" for r in matrix), "the declared dev -> test flow is probed too"
    # from the controller's own probe on each segment and each access network, never from a host a developer is
    # root on
    zones = [e.name for e in lab.site.model.environments] + [a.name for a in lab.site.model.access_networks]
    assert {r["source"] for r in matrix} == {f"probe@{zone}" for zone in zones}
    # people's workstations (the office access network): SSH open into dev and test, everything else refused
    office = [r for r in matrix if r["source_env"] == "office"]
    assert office, "NET-2 has rows from the access network"
    hosts = {h.name for h in lab.site.model.hosts}
    ssh_in = [
        r for r in office if r["port"] == 22 and r["destination_env"] in ("dev", "test") and r["destination"] in hosts
    ]
    assert ssh_in and all(r["expected"] == "open" and r["observed"] == "connected" for r in ssh_in), ssh_in
    refused = [r for r in office if r not in ssh_in and r["port"] != "icmpv6"]
    assert {r["destination_env"] for r in refused} >= {"prod", "mgmt", "office", "dev"}, "service ports, legs too"
    assert all(r["expected"] == "blocked" and r["ok"] for r in refused), [r for r in refused if not r["ok"]]
    assert all(r["observed"] == "rejected" for r in refused if isinstance(r["port"], int)), refused
    assert {r["destination"] for r in office} >= {"controller", "gateway (leg on office)", "gateway (leg on prod)"}
    assert any(r["destination"] == "gateway (leg on office)" for r in matrix if r["source_env"] == "dev"), (
        "from the segments, the access network's gateway leg is tried too"
    )
    blocked = [r for r in matrix if r["expected"] == "blocked" and r["port"] != "icmpv6"]
    assert all("corroborates" in r["detail"] for r in blocked), [
        r for r in blocked if "corroborates" not in r["detail"]
    ]
    assert {r["destination"] for r in matrix} >= {"controller", "gateway (leg on mgmt)", "gateway (leg on prod)"}
    v6 = [r for r in matrix if r["port"] == "icmpv6"]
    assert len(v6) == len(zones) and all(r["ok"] for r in v6), v6
    assert all(r["detail"].startswith("only the probe itself") for r in v6), "the probe heard its own answer"
    assert not _probe_namespaces(), "the probes are gone after verify"
    # ACC-2's attempts carry `ok` too (a waiver covers a failure only by its failing rows): the positive control in
    # development accepted, every production attempt refused
    attempts = [r for row in results["results"] if row["control"] == "ACC-2" for r in row["rows"]]
    assert attempts and all(r["ok"] is True for r in attempts), attempts
    assert {r["expected"] for r in attempts} == {"accepted", "refused"}
    _acc3_attempted_from_the_probe(lab, results["results"])
    suites = ET.parse(run_dir / "junit.xml").getroot()
    assert int(suites.find("testsuite").get("tests")) == len(results["results"])


ACC3_ATTEMPT = "test_developer_cannot_reach_the_production_database"


def _acc3_attempted_from_the_probe(lab, results: list[dict]) -> None:
    """ACC-3's logins start at the controller's probe on the development segment, never on a host a developer is
    root on: each developer logs in to dev's database there (the positive control), and production's database is
    refused by the gateway itself (ICMP administratively prohibited from its dev leg), counted by its deny
    counter."""
    dev = next(e for e in lab.site.model.environments if e.tier == "development")
    probe = policy.probe_address(dev)
    checks = [row for row in results if row["check"] == ACC3_ATTEMPT]
    assert checks and all(row["status"] == "pass" for row in checks), checks
    for row in checks:
        assert row["evidence"].startswith(f"probe@{dev.name}: the controller's probe at {probe}/"), row["evidence"]
        assert "over SSH" not in row["evidence"], "the control ran from the probe too"
        assert {r["source"] for r in row["rows"]} == {f"probe@{dev.name}"}, row["rows"]
        control = [r for r in row["rows"] if r["expected"] == "logged in"]
        assert [(r["observed"], r["ok"]) for r in control] == [("logged in", True)], control
        assert control[0]["detail"].startswith(f"logged in as {row['host']}: the control works")
        refused = [r for r in row["rows"] if r["expected"] == "refused"]
        prod_dbs = {h.name for h in _db_hosts(lab, "production")}
        assert {r["host"] for r in refused} == prod_dbs, refused
        for r in refused:
            assert (r["observed"], r["icmp"], r["ok"]) == ("refused by the gateway", "ICMP type 3 code 13", True), r
            assert f"from the gateway ({dev.segment.gateway})" in r["detail"] and ": corroborates" in r["detail"], r


def _db_hosts(lab, tier: str) -> list:
    model = lab.site.model
    return [h for h in model.hosts if "db" in h.roles and model.environment(h.environment).tier == tier]


def _gateway_forward_table(lab) -> str:
    ruleset = json.loads(in_container(container(lab, "gateway"), "nft -j list ruleset").stdout)
    chain = next(
        item["chain"] for item in ruleset["nftables"] if "chain" in item and item["chain"].get("hook") == "forward"
    )
    return f"{chain['family']} {chain['table']} {chain['name']}"


def test_allow_rule_dev_to_prod_on_the_gateway_fails_net2(lab):
    """The gateway lets dev into prod: NET-2 fails, and so does ACC-3: the production database's connection is now
    refused by prod-db1's own firewall, not by the gateway, and that is not the separation ACC-3 proves."""
    gateway = container(lab, "gateway")
    chain = _gateway_forward_table(lab)
    planted = in_container(gateway, f'nft insert rule {chain} iifname "seg-dev" oifname "seg-prod" accept')
    assert planted.returncode == 0, planted.stderr
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"NET-2", "ACC-3"}
        acc3 = [f for f in data["failures"] if f["control"] == "ACC-3"]
        assert acc3 and {f["check"] for f in acc3} == {ACC3_ATTEMPT}, acc3
        for failure in acc3:
            (row,) = [r for r in failure["rows"] if r["ok"] is False]
            assert row["host"] == "prod-db1", row
            # the host's reject (or silence: the gateway forwards no ICMP back on an undeclared pair), never the
            # gateway's own reject
            assert row["observed"] in ("another error", "no answer"), row
    finally:
        in_container(gateway, "systemctl restart nftables")
    assert verify(lab)[0] == 0


def test_acc3_reads_the_production_servers_own_refusal_when_the_network_lets_the_login_through(lab):
    """The gateway and prod-db1's firewall both opened to the dev segment on the database port (NET-2 fails): the
    login from the probe reaches PostgreSQL itself, whose pg_hba.conf has no line for a developer in production, so
    the refusal is the server's (SQLSTATE 28000) and ACC-3 still passes, for that reason."""
    dev = next(e for e in lab.site.model.environments if e.tier == "development")
    (prod_db,) = _db_hosts(lab, "production")
    gateway, db = container(lab, "gateway"), container(lab, prod_db.name)
    chain = _gateway_forward_table(lab)
    opened = [
        in_container(gateway, f'nft insert rule {chain} iifname "seg-prod" oifname "seg-dev" ct state established '
                              "accept"),
        in_container(gateway, f'nft insert rule {chain} iifname "seg-dev" oifname "seg-prod" '
                              f"ip daddr {prod_db.address} tcp dport 5432 accept"),
        in_container(db, f"nft insert rule inet provisioner_host input ip saddr {dev.segment.cidr} tcp dport 5432 "
                         "accept"),
    ]  # fmt: skip
    assert all(o.returncode == 0 for o in opened), [o.stderr for o in opened]
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"NET-2"}, "ACC-3 holds: the server refused"
        run = json.loads((Path(data["run_dir"]) / "results.json").read_text())
        rows = [r for row in run["results"] if row["check"] == ACC3_ATTEMPT for r in row["rows"]]
        refused = [r for r in rows if r["expected"] == "refused"]
        assert refused and all(r["source"] == f"probe@{dev.name}" for r in refused), refused
        for r in refused:
            assert (r["observed"], r["sqlstate"], r["ok"]) == ("refused by the server", "28000", True), r
            assert "pg_hba.conf rejects" in r["detail"], r
    finally:
        in_container(gateway, "systemctl restart nftables")
        in_container(db, "systemctl restart nftables")
    assert verify(lab)[0] == 0


def test_developer_key_on_a_prod_host_fails_acc1_and_acc2(lab):
    alice = (KEYS / "alice.pub").read_text().strip()
    host = container(lab, "prod-app1")
    keys = "/etc/ssh/authorized_keys/provision"  # where sshd reads the automation account's keys (root-owned)
    in_container(host, f"cp {keys} /root/keys.bak && echo '{alice}' >> {keys}")
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"ACC-1", "ACC-2"}
        # the failure is located: the evidence row of the production host that accepted the key fails, so no
        # waiver can cover it (ACC-2 in production is never waived) and none may be declared for it
        (acc2,) = [f for f in data["failures"] if f["control"] == "ACC-2"]
        failing = [r for r in acc2["rows"] if r["ok"] is False]
        assert failing and {r["host"] for r in failing} == {"prod-app1"}, acc2["rows"]
        assert data["verdicts"]["ACC-2"] == "fail" and data["accepted_risks"] == []
    finally:
        in_container(host, f"cp /root/keys.bak {keys} && rm /root/keys.bak")


def test_a_system_account_with_a_shell_on_a_prod_host_fails_acc1(lab):
    """uid below 1000, but /bin/bash: the access checks see it and name it."""
    host = container(lab, "prod-app1")
    made = in_container(host, "useradd --system --shell /bin/bash --no-create-home sneaky")
    assert made.returncode == 0, made.stderr
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"ACC-1"}
        failure = next(f for f in data["failures"] if f["control"] == "ACC-1")
        assert failure["host"] == "prod-app1" and "sneaky (uid " in failure["evidence"]
        assert "sneaky (undeclared)" in failure["observed"]
    finally:
        in_container(host, "userdel sneaky")


def test_password_authentication_on_fails_acc5(lab):
    host = container(lab, "test-db1")
    in_container(host, "echo 'PasswordAuthentication yes' > /etc/ssh/sshd_config.d/00-fault.conf")
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"ACC-5"}
        failure = next(f for f in data["failures"] if f["control"] == "ACC-5")
        assert failure["host"] == "test-db1" and "passwordauthentication yes" in failure["observed"]
    finally:
        in_container(host, "rm -f /etc/ssh/sshd_config.d/00-fault.conf")


def test_keys_read_from_the_home_fail_acc5(lab):
    """sshd told to read ~/.ssh/authorized_keys again (a drop-in before the role's): ACC-5 names the setting."""
    host = container(lab, "test-db1")
    fault = "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u"
    in_container(host, f"echo '{fault}' > /etc/ssh/sshd_config.d/00-fault.conf")
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"ACC-5"}
        failure = next(f for f in data["failures"] if f["control"] == "ACC-5")
        assert failure["host"] == "test-db1" and "authorizedkeysfile .ssh/authorized_keys" in failure["observed"]
    finally:
        in_container(host, "rm -f /etc/ssh/sshd_config.d/00-fault.conf")


def test_a_key_file_its_user_owns_fails_acc5(lab):
    host = container(lab, "prod-app1")
    in_container(host, "chown dave /etc/ssh/authorized_keys/dave")
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"ACC-5"}
        failure = next(f for f in data["failures"] if f["control"] == "ACC-5")
        assert "/etc/ssh/authorized_keys/dave belongs to uid" in failure["evidence"]
    finally:
        in_container(host, "chown root /etc/ssh/authorized_keys/dave")


def test_removed_banner_fails_cue1(lab):
    host = container(lab, "dev-app1")
    in_container(host, "mv /etc/issue.net /root/issue.net.bak")
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"CUE-1"}
    finally:
        in_container(host, "mv /root/issue.net.bak /etc/issue.net")


def test_developer_database_role_in_prod_fails_acc3(lab):
    host = container(lab, "prod-db1")
    made = in_container(host, "runuser -u postgres -- psql -X -q -c 'create role alice login'")
    assert made.returncode == 0, made.stderr
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"ACC-3"}
    finally:
        in_container(host, "runuser -u postgres -- psql -X -q -c 'drop role alice'")
    rc, data = verify(lab)
    assert rc == 0, data["failures"]


def _probe_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith("provisioner-probe-")]


def _net2(lab) -> tuple[int, dict]:
    result = lab.cli("verify", str(lab.site_file), "--keys", str(verify_keys()), "--json", "-k", "reachability")
    assert result.stdout, result.stderr
    return result.rc, result.json


def _v6_row(data: dict, source_env: str) -> dict:
    run = json.loads((Path(data["run_dir"]) / "results.json").read_text())
    return next(
        row
        for result in run["results"]
        if result["control"] == "NET-2"
        for row in result["rows"]
        if row["port"] == "icmpv6" and row["source_env"] == source_env
    )


def test_ipv6_on_the_controllers_bridge_is_drift_and_the_guard_keeps_the_controller_silent(lab):
    """A link-local address on the dev bridge made the controller reachable over IPv6 from every dev host: apply
    switches it off, plan reports it back on as drift, and even then the guard's input chain keeps the
    controller from answering on the segment (the probe hears only itself)."""
    bridge = backend_for(lab.site, lab.state).bridge("dev")
    switch = Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6")
    assert switch.read_text().strip() == "1", "apply leaves IPv6 off on the segment bridges"
    switch.write_text("0\n")
    try:
        time.sleep(2)  # the bridge's link-local address passes duplicate detection
        plan = lab.cli("plan", str(lab.site_file), "--json")
        assert any(f"IPv6 is on for bridge {bridge}" in c.get("detail", "") for c in plan.json["changes"]), plan.stdout
        rc, data = _net2(lab)
        assert rc == 0, data.get("failures")
        assert _v6_row(data, "dev")["detail"].startswith("only the probe itself"), "the controller answered"
    finally:
        switch.write_text("1\n")


def test_ipv6_switched_on_at_the_gateway_leg_still_gets_no_answer_on_the_segment(lab):
    """The gateway's input policy drops IPv6 as it drops IPv4: with IPv6 on for its dev leg it still does not answer
    the probe (that the probe hears and names any other answer is shown by test_reach_probe.py)."""
    gateway = container(lab, "gateway")
    on = in_container(gateway, "sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.seg-dev.disable_ipv6=0")
    assert on.returncode == 0, on.stderr
    try:
        time.sleep(2)
        leg = in_container(gateway, "ip -6 -br address show dev seg-dev").stdout
        assert "fe80::" in leg, f"the gateway's dev leg has a link-local address now: {leg}"
        rc, data = _net2(lab)
        assert rc == 0, data.get("failures")
        assert _v6_row(data, "dev")["detail"].startswith("only the probe itself")
    finally:
        in_container(gateway, "sysctl -q -w net.ipv6.conf.seg-dev.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1")


def test_a_port_sweep_from_dev_during_verify_does_not_change_its_verdicts(lab):
    """A developer floods prod from dev (exhausting the gateway's ICMP budget) while verify probes."""
    targets = [str(h.address) for h in lab.site.model.hosts_in("prod")]
    sweep = (
        "import os, socket, time\n"
        "open('/run/provisioner-sweep.pid', 'w').write(str(os.getpid()))\n"
        f"targets = {targets!r}\n"
        "end = time.monotonic() + 120\n"
        "port = 1\n"
        "while time.monotonic() < end:\n"
        "    for address in targets:\n"
        "        s = socket.socket(); s.setblocking(False)\n"
        "        try: s.connect_ex((address, port))\n"
        "        finally: s.close()\n"
        "        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "        u.sendto(b'x', (address, port)); u.close()\n"
        "    port = port % 65535 + 1\n"
    )
    dev_host = container(lab, lab.site.model.hosts_in("dev")[0].name)
    flood = subprocess.Popen(["lxc-attach", "-n", dev_host, "--", "python3", "-c", sweep])
    try:
        time.sleep(3)
        assert flood.poll() is None, "the sweep runs"
        rc, data = _net2(lab)
        assert rc == 0, json.dumps(data["failures"], indent=1)[:3000]
    finally:
        flood.kill()  # lxc-attach only: the sweep inside the container outlives it, so it is ended there
        flood.wait()
        _end_sweep(dev_host)


def _end_sweep(name: str) -> None:
    """End the sweep inside the container and wait until it is gone: left running, it would drain the gateway's
    ICMP budget for that host and silence the refusals later tests read."""
    stop = (
        "import os, signal, time\n"
        "pid = int(open('/run/provisioner-sweep.pid').read())\n"
        "try:\n"
        "    os.kill(pid, signal.SIGKILL)\n"
        "except ProcessLookupError:\n"
        "    pass\n"
        "for _ in range(100):\n"
        "    if not os.path.exists(f'/proc/{pid}') or open(f'/proc/{pid}/stat').read().split(') ')[1][0] == 'Z':\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "else:\n"
        "    raise SystemExit('the sweep is still running')\n"
        "os.unlink('/run/provisioner-sweep.pid')\n"
    )
    ended = in_container(name, f"python3 -c {_quoted(stop)}")
    assert ended.returncode == 0, ended.stderr


PRIVILEGED = "hyp1-privileged"


def _attempts_in(name: str) -> list[escape_probe.Verdict]:
    result = in_container(name, f"python3 -c {_quoted(escape_probe.SCRIPT)}")
    assert result.returncode == 0, result.stderr
    return escape_probe.judge(json.loads(result.stdout))


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture
def privileged_container():
    """A container as the lab made them before HYP-1: no user-id mapping. No network; nothing but a shell."""
    lxcpath = base_image.lxc_path()
    rootfs = base_image.base_rootfs(lxcpath)
    directory = lxcpath / PRIVILEGED
    if directory.exists():
        containers.remove(lxcpath, PRIVILEGED, running=containers.is_running(PRIVILEGED))
    delta = containers.make_directory(directory)
    lines = containers.config_header("a privileged container: HYP-1 must fail on it", PRIVILEGED, rootfs, delta)
    lines = [line for line in lines if not line.startswith("lxc.idmap")]
    lines += ["lxc.net.0.type = empty", "lxc.init.cmd = /bin/sleep infinity"]
    containers.write_config(directory, "\n".join(lines) + "\n")
    containers.start(PRIVILEGED)
    yield PRIVILEGED
    containers.remove(lxcpath, PRIVILEGED, running=True)


def test_escape_attempts_fail_in_the_lab_hosts_and_succeed_in_a_privileged_container(lab, privileged_container):
    """The control can fail: the same attempts that the lab's dev host refuses get through a privileged container
    (each one writes back the value it read, so the host is unchanged)."""
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    dev_host = container(lab, lab.site.model.hosts_in("dev")[0].name)
    confined = _attempts_in(dev_host)
    assert confined and all(v.refused for v in confined), [v for v in confined if not v.refused]
    assert {v.outcome for v in confined if v.target.endswith("core_pattern")} <= {"EACCES", "EPERM", "EROFS"}
    facts, problems = containers.isolation(base_image.lxc_path(), dev_host)
    assert problems == [], problems
    assert any(f"uid_map: 0 {idmap.ID_OFFSET} {idmap.ID_COUNT}" in fact for fact in facts), facts

    exposed = _attempts_in(privileged_container)
    opened = {v.target for v in exposed if not v.refused}
    assert "fresh /proc/sys/kernel/core_pattern" in opened, exposed
    assert any(t.startswith("fresh /sys/") for t in opened), exposed
    _, problems = containers.isolation(base_image.lxc_path(), privileged_container)
    assert any("has no lxc.idmap: a privileged container" in p for p in problems), problems
    assert any("root inside is the host's root" in p for p in problems), problems
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern, "an attempt changed the host"


# ---- LOG-1: the production journal leaves the host as it is written ------------------------------------------


def verify_log1(lab) -> tuple[int, dict]:
    """verify, LOG-1's checks only (the whole suite runs in the tests above and below)."""
    result = lab.cli(
        "verify", str(lab.site_file), "--keys", str(verify_keys()), "--json", "-k", "production_records or logs_leave"
    )
    assert result.stdout, result.stderr
    assert set(result.json["controls"]) == {"LOG-1"}, result.json["controls"]
    return result.rc, result.json


def _gateway_counters(lab) -> dict[str, int]:
    from provisioner.conformance import reachability

    listed = in_container(container(lab, "gateway"), f"nft -j list counters table inet {reachability.GATEWAY_TABLE}")
    assert listed.returncode == 0, listed.stderr
    return reachability.parse_counters(json.loads(listed.stdout))


def _receiver(lab):
    from provisioner.backends.network import log_receiver

    return log_receiver.for_site(lab.state, lab.site.model)


def _messages_in_copy(lab, address: str, since: int) -> list[str]:
    return [str(e.get("MESSAGE", "")) for e in _receiver(lab).entries_since(address, since)]


def _wait_for_copy(lab, address: str, since: int, marker: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(marker in m for m in _messages_in_copy(lab, address, since)):
            return True
        time.sleep(0.5)
    return False


def test_a_root_user_who_wipes_a_production_journal_cannot_take_back_what_was_shipped(lab):
    """root on a production host acts, then rotates and vacuums the journal and empties the sudo log: the host no
    longer shows the act, the controller's copy (received from the host's address) still does, and LOG-1 keeps
    passing on what arrives next."""
    host = next(h for h in lab.site.model.hosts if h.name == "prod-db1")
    name = container(lab, host.name)
    since = int(in_container(name, "date +%s").stdout)
    marker = f"pv-wiped-{time.time_ns()}"
    assert in_container(name, f"logger -p authpriv.notice {marker}").returncode == 0
    assert _wait_for_copy(lab, str(host.address), since, marker), "the entry never reached the controller's copy"
    wiped = in_container(name, "journalctl --rotate && journalctl --vacuum-time=1s >/dev/null && : > /var/log/sudo.log")
    assert wiped.returncode == 0, wiped.stderr
    on_host = in_container(name, f"journalctl --no-pager -o cat --since @{since}").stdout
    assert marker not in on_host, "the wipe did not take the entry off the host (the test proves nothing)"
    copy = _receiver(lab).journal_of(host.address)
    assert copy.name == f"remote-{host.address}.journal"
    assert any(marker in m for m in _messages_in_copy(lab, str(host.address), since)), (
        "the controller's copy lost an entry the host wiped"
    )
    assert copy.stat().st_mode & 0o007 == 0 and copy.parent.stat().st_mode & 0o777 == 0o700, "others may read"
    rc, data = verify_log1(lab)
    assert rc == 0 and data["controls"]["LOG-1"]["fail"] == 0, json.dumps(data["failures"], indent=1)[:3000]


def test_only_production_reaches_the_log_receiver(lab):
    """A developer (root on a dev host) cannot open a connection to the receiver: the gateway refuses it (No route
    to host, its deny counter for dev -> mgmt rises); a production host can (the positive control)."""
    controller = str(lab.site.model.management.controller)
    port = policy.LOG_RECEIVER_PORT
    assert _receiver(lab).running(), "the receiver is not running: the refusal below would prove nothing"
    prod = tcp_connect(container(lab, "prod-db1"), controller, port)
    assert "connected" in prod.stdout, f"control: production cannot reach the receiver: {prod.stderr}"
    before = _gateway_counters(lab)
    dev = tcp_connect(container(lab, "dev-app1"), controller, port)
    after = _gateway_counters(lab)
    assert "connected" not in dev.stdout
    assert "No route to host" in dev.stderr, f"refused for another reason: {dev.stderr}"
    assert after["deny_dev_to_mgmt"] > before["deny_dev_to_mgmt"], "the gateway did not count the refused attempt"


def test_the_receiver_stopped_fails_log1_and_apply_starts_it_again(lab):
    receiver = _receiver(lab)
    receiver.stop()
    try:
        rc, data = verify_log1(lab)
        assert rc == 1
        assert failed_controls(data) == {"LOG-1"}
        failing = [f for f in data["failures"] if f["control"] == "LOG-1"]
        shipped = [f for f in failing if f["check"] == "test_production_logs_leave_the_host_as_they_are_written"]
        assert failing == shipped and shipped, failing  # the host's own logging still passes
        assert {f["host"] for f in shipped} == {h.name for h in lab.site.model.hosts_in("prod")}
        assert all("log receiver is not running" in f["evidence"] for f in shipped), shipped[0]["evidence"]
    finally:
        result = lab.cli("apply", str(lab.site_file), "--json", timeout=1500)
        assert result.rc == 0, result.stdout[-2000:]
    assert receiver.running()
