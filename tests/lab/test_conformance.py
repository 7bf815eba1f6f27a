"""`provision verify` on a real lab: it passes, then fails with the right control ID for each planted fault.

Faults are planted one at a time and repaired before the next, so each verify run isolates one control.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import DEMO_KEYS
from probes import in_container

from provisioner.conformance.controls import CONTROLS

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(900)]

KEYS = DEMO_KEYS
SUITE_CONTROLS = {
    "NET-1", "NET-2", "NET-3", "ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5", "CUE-1", "CUE-2", "LOG-1",
    "DATA-1", "DATA-2", "DATA-3",
}  # fmt: skip
# the path to live: on a lab without releases they pass on an empty, verifying ledger and hosts without release files
SUITE_CONTROLS |= {"CHG-1", "CHG-2", "CHG-3", "CHG-4"}
# read back from a hypervisor's accounts: the LXC lab has none, so these checks report a skip with the reason
HYPERVISOR_CONTROLS = {"ACC-6"}


def verify(lab) -> tuple[int, dict]:
    result = lab.cli("verify", str(lab.site_file), "--keys", str(KEYS), "--json")
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
    udp = [r for r in matrix if not isinstance(r["port"], int)]
    assert udp and all(r["observed"] == f"icmp-from:{gateways[r['source_env']]}" for r in udp), udp
    assert any(r["expected"] == "open" for r in matrix), "the declared dev -> test flow is probed too"
    # ACC-2's attempts carry `ok` too (a waiver covers a failure only by its failing rows): the positive control in
    # development accepted, every production attempt refused
    attempts = [r for row in results["results"] if row["control"] == "ACC-2" for r in row["rows"]]
    assert attempts and all(r["ok"] is True for r in attempts), attempts
    assert {r["expected"] for r in attempts} == {"accepted", "refused"}
    suites = ET.parse(run_dir / "junit.xml").getroot()
    assert int(suites.find("testsuite").get("tests")) == len(results["results"])


def _gateway_forward_table(lab) -> str:
    ruleset = json.loads(in_container(container(lab, "gateway"), "nft -j list ruleset").stdout)
    chain = next(
        item["chain"] for item in ruleset["nftables"] if "chain" in item and item["chain"].get("hook") == "forward"
    )
    return f"{chain['family']} {chain['table']} {chain['name']}"


def test_allow_rule_dev_to_prod_on_the_gateway_fails_net2(lab):
    gateway = container(lab, "gateway")
    chain = _gateway_forward_table(lab)
    planted = in_container(gateway, f'nft insert rule {chain} iifname "seg-dev" oifname "seg-prod" accept')
    assert planted.returncode == 0, planted.stderr
    try:
        rc, data = verify(lab)
        assert rc == 1
        assert failed_controls(data) == {"NET-2"}
    finally:
        in_container(gateway, "systemctl restart nftables")
    assert verify(lab)[0] == 0


def test_developer_key_on_a_prod_host_fails_acc1_and_acc2(lab):
    alice = (KEYS / "alice.pub").read_text().strip()
    host = container(lab, "prod-app1")
    keys = "/home/provision/.ssh/authorized_keys"
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
