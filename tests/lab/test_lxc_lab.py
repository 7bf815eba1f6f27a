"""The spine end to end on real LXC: plan, apply, re-apply, separation, interruption, destroy.

The tests of this module build the shared lab that the other lab modules then use; its destroy test runs after
all of them, last.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import hostile_text, template_marker
from helpers import ROOT
from probes import (
    containers_named,
    in_container,
    interfaces_with_prefix,
    routes_via_prefix,
    site_containers,
    ssh,
    tcp_connect,
)

from provisioner.backends.network import hostguard, links

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("build"), pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def lab(shared_lab):
    return shared_lab  # not applied: the first tests here start from an empty machine


def tag(site: str) -> str:
    return "pv" + hashlib.sha1(site.encode()).hexdigest()[:4]


def wait_for_line(proc, needle: str, timeout: float = 300) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"'{needle}' never appeared: {''.join(seen)}")


def test_plan_on_an_empty_machine_lists_everything_to_create(lab):
    result = lab.cli("plan", str(lab.site_file), "--json")
    assert result.rc == 0, result.stderr
    changes = {(c["kind"], c["name"]): c["action"] for c in result.json["changes"]}
    site = lab.site.model
    expected = {("segment", "mgmt")} | {("segment", e.name) for e in site.environments}
    expected |= {("segment", a.name) for a in site.access_networks}
    assert site.access_networks, "the lab's site has an access network (people's workstations)"
    expected |= {("host", h.name) for h in site.hosts} | {("gateway", "gateway")}
    assert set(changes) == expected
    assert set(changes.values()) == {"create"}
    assert site_containers(site.site) == set(), "plan must not create anything"


def test_apply_killed_while_building_then_rerun_converges(lab):
    proc = lab.popen("apply", str(lab.site_file))
    wait_for_line(proc, "creating host")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert interfaces_with_prefix(tag(lab.site.name)), "the kill left a partly built lab to recover from"
    result = lab.cli("apply", str(lab.site_file), "--json")
    assert result.rc == 0, result.stdout + result.stderr
    assert result.json["status"] == "successful"
    names = {f"{lab.site.name}-{h.name}" for h in lab.site.model.hosts} | {f"{lab.site.name}-gateway"}
    assert site_containers(lab.site.name) == names
    assert containers_named(f"{lab.site.name}-") == names, "no orphaned container directories"


def _decision(apply_json: dict) -> dict:
    """The run's record of which hosts ran the playbook and why (skip-decision.json in its folder)."""
    return json.loads((Path(apply_json["run_dir"]) / "skip-decision.json").read_text())


def test_after_apply_plan_is_empty_and_drift_is_repaired(lab):
    plan = lab.cli("plan", str(lab.site_file), "--json")
    assert plan.json["changes"] == []
    everyone = {h.name for h in lab.site.model.hosts} | {"gateway"}
    # a converged lab: every host's inputs and live state are as its last successful run left them
    quiet = lab.cli("apply", str(lab.site_file), "--json")
    assert quiet.rc == 0, quiet.stdout + quiet.stderr
    assert set(quiet.json["left_out"]) == everyone, _decision(quiet.json)["run"]
    assert quiet.json["stats"]["ok"] == 0 and _decision(quiet.json)["run"] == {}
    # drift the plan cannot see, made by hand on three hosts: the live fingerprints see it and the roles repair it
    name = lab.site.name
    keys = "/etc/ssh/authorized_keys"
    in_container(f"{name}-dev-app1", "rm -f /etc/motd")
    removed = in_container(
        f"{name}-test-app1", f"k=$(ls {keys} | grep -vx provision | head -1); rm {keys}/$k && echo $k"
    )
    assert removed.returncode == 0 and removed.stdout.strip(), removed.stderr
    person = removed.stdout.strip()
    assert in_container(f"{name}-prod-db1", "nft flush ruleset && nft list ruleset").stdout.strip() == ""
    repaired = lab.cli("apply", str(lab.site_file), "--json")
    assert repaired.rc == 0, repaired.stderr
    assert repaired.json["plan"] == [] and repaired.json["stats"]["changed"] >= 3
    ran = _decision(repaired.json)["run"]
    assert set(ran) == {"dev-app1", "test-app1", "prod-db1"}, ran
    assert all(why.startswith("live state changed: ") for why in ran.values()), ran
    assert "file /etc/motd" in ran["dev-app1"] and "nft ruleset" in ran["prod-db1"]
    assert set(repaired.json["left_out"]) == everyone - set(ran)
    assert in_container(f"{name}-dev-app1", "test -s /etc/motd").returncode == 0
    assert in_container(f"{name}-test-app1", f"test -s {keys}/{person}").returncode == 0
    assert "inet" in in_container(f"{name}-prod-db1", "nft list ruleset").stdout
    # and the lab is whole again: the next apply finds every host converged and changes nothing
    again = lab.cli("apply", str(lab.site_file), "--json")
    assert again.rc == 0, again.stderr
    assert again.json["stats"]["changed"] == 0 and set(again.json["left_out"]) == everyone
    # --full runs every host whatever the fingerprints say, and changes nothing on a converged lab
    full = lab.cli("apply", str(lab.site_file), "--full", "--json")
    assert full.rc == 0, full.stderr
    assert full.json["left_out"] == {} and set(_decision(full.json)["run"]) == everyone
    assert full.json["stats"]["changed"] == 0 and full.json["stats"]["ok"] > 0


def test_every_host_answers_ssh_at_its_declared_address_with_a_pinned_host_key(lab):
    state = lab.state
    for host in lab.site.model.hosts:
        result = ssh(state.controller_key, state.known_hosts, "provision", str(host.address), "hostname")
        assert result.returncode == 0, f"{host.name}: {result.stderr}"
        assert result.stdout.strip() == host.name


def test_hosts_have_distinct_identities(lab):
    ids, keys = set(), set()
    for host in lab.site.model.hosts:
        container = f"{lab.site.name}-{host.name}"
        ids.add(in_container(container, "cat /etc/machine-id").stdout.strip())
        keys.add(in_container(container, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1])
    assert len(ids) == len(keys) == len(lab.site.model.hosts)


def test_each_host_has_one_interface_on_its_environments_bridge(lab):
    site = lab.site.model
    all_links = {link.name: link for link in links.list_links()}
    for host in site.hosts:
        container = f"{site.site}-{host.name}"
        inside = json.loads(in_container(container, "ip -j link show").stdout)
        assert sorted(i["ifname"] for i in inside) == ["eth0", "lo"], host.name
        peer_index = inside[[i["ifname"] for i in inside].index("eth0")]["link_index"]
        host_side = next(link for link in links.list_links() if _ifindex(link.name) == peer_index)
        assert all_links[host_side.name].master == f"{tag(site.site)}-{host.environment}", host.name


def _ifindex(name: str) -> int:
    return int(open(f"/sys/class/net/{name}/ifindex").read())


def test_no_host_reaches_another_environment_but_hosts_inside_one_do(lab):
    site = lab.site.model
    for src in site.hosts:
        for dst in site.hosts:
            if src.environment == dst.environment:
                continue
            result = tcp_connect(f"{site.site}-{src.name}", str(dst.address), 22)
            assert "connected" not in result.stdout, f"{src.name} -> {dst.name} crossed environments"
            # refused by the gateway, not a typo or a dead host
            assert "No route to host" in result.stderr, f"{src.name} -> {dst.name}: {result.stderr}"
    # the positive control: inside an environment the app host reaches its database
    for env in site.environments:
        app = next(h for h in site.hosts_in(env.name) if "app" in h.roles)
        db = next(h for h in site.hosts_in(env.name) if "db" in h.roles)
        result = tcp_connect(f"{site.site}-{app.name}", str(db.address), 5432)
        assert "connected" in result.stdout, f"{app.name} -> {db.name}:5432: {result.stderr}"


def test_the_lab_never_routes_to_the_outside(lab):
    site = lab.site.model
    gateway = f"{site.site}-gateway"
    routes = in_container(gateway, "ip -4 route show").stdout
    assert "default" not in routes, routes
    host = f"{site.site}-{site.hosts[0].name}"
    result = tcp_connect(host, "192.0.2.1", 80)
    assert "connected" not in result.stdout
    assert hostguard.present(site.site)


def _from_segments_count(site: str) -> int:
    listed = subprocess.run(
        ["nft", "-j", "list", "counter", "inet", hostguard.table_name(site), "from_segments"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return next(i["counter"]["packets"] for i in json.loads(listed.stdout)["nftables"] if "counter" in i)


def test_a_dev_host_cannot_talk_to_the_controller_through_its_own_bridge(lab):
    """Linux answers ARP for the controller's management address on every bridge; a root in dev who routes that
    address onto its own segment reaches the controller past the gateway unless the guard's input chain drops it."""
    site = lab.site.model
    host = f"{site.site}-{site.hosts_in('dev')[0].name}"
    controller = str(site.management.controller)
    before = _from_segments_count(site.site)
    planted = in_container(host, f"ip route add {controller}/32 dev eth0")
    assert planted.returncode == 0, planted.stderr
    try:
        attempt = tcp_connect(host, controller, 22)
        assert "connected" not in attempt.stdout, "a dev host reached the controller's SSH through its own bridge"
        arp = in_container(host, f"ip neigh show {controller}").stdout
        assert "lladdr" in arp, f"the controller answers ARP on the dev bridge (the way in is there): {arp}"
        assert _from_segments_count(site.site) > before, "the guard's input chain dropped it (counted)"
    finally:
        in_container(host, f"ip route del {controller}/32 dev eth0")


def test_inventory_is_standard_yaml_for_plain_ansible(lab):
    """Plain Ansible reads it (its own `ansible-inventory`); text values carry Ansible's `!unsafe` tag."""
    listed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", str(lab.site_file.parent / "hosts.yml"), "--list"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    inventory = json.loads(listed.stdout)
    assert set(inventory["env_prod"]["hosts"]) == {"prod-app1", "prod-db1"}
    # text values come back as Ansible's own unsafe text: data, never a template
    assert inventory["_meta"]["hostvars"]["prod-db1"]["env_tier"] == {"__ansible_unsafe": "production"}
    assert set(inventory["role_db"]["hosts"]) == {"dev-db1", "test-db1", "prod-db1"}


def test_template_syntax_in_the_site_file_arrives_on_the_hosts_as_literal_text(lab):
    """Full names and descriptions end in Jinja (see lab_site_data): the hosts show it as written, and the lookup
    it holds never ran on the controller."""
    site = lab.site.model
    name = site.site
    for host, person in (("dev-app1", "alice"), ("prod-db1", "dave")):
        full_name = site.person(person).full_name
        assert hostile_text(name) in full_name
        passwd = in_container(f"{name}-{host}", f"getent passwd {person}")
        assert passwd.returncode == 0, passwd.stderr
        assert passwd.stdout.split(":")[4] == full_name
    for host, env in (("dev-app1", "dev"), ("prod-db1", "prod")):
        motd = in_container(f"{name}-{host}", "cat /etc/motd").stdout
        assert site.environment(env).description in motd
    assert not template_marker(name).exists(), "a value from the site file ran as a template on the controller"


def test_run_artifacts_keep_events_and_no_secret(lab):
    # the latest apply that ran the playbook on some host (a no-op apply that left every host out has no playbook
    # run, only its skip decision; two runs in one second sort by their random suffix, so time orders them here)
    played = [
        run for run in lab.state.runs_dir.glob("*-apply-*")
        if (run / "skip-decision.json").is_file() and json.loads((run / "skip-decision.json").read_text())["run"]
    ]  # fmt: skip
    assert played
    last = max(played, key=lambda run: (run / "skip-decision.json").stat().st_mtime)
    events = list(last.glob("artifacts/job/job_events/*.json"))
    assert events, "job events are kept as evidence"
    private_key = lab.state.controller_key.read_text()
    secrets = {"the controller's key": private_key.strip().splitlines()[1]}
    # every secret the site holds: database passwords (the controller's reader's too) and private keys (the log
    # authority's, the receiver's, each production host's upload key); certificates are public
    for path in sorted(lab.state.secrets_dir.iterdir()):
        if path.is_file() and path.suffix not in (".crt", ".pub"):
            lines = [line for line in path.read_text(errors="ignore").splitlines() if not line.startswith("-----")]
            secrets[path.name] = max(lines, key=len)
    assert "db-provisioner_reader-dev" in secrets and any(name.startswith("log-upload-") for name in secrets)
    assert all(len(value) >= 16 for value in secrets.values()), "each secret is looked for by enough of its text"
    for path in last.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore")
            for name, value in secrets.items():
                assert value not in text, f"{name} in {path}"


def test_destroy_prod_without_confirmation_refuses_and_changes_nothing(lab):
    before = lab.cli("status", str(lab.site_file), "--json").json
    result = lab.cli("destroy", str(lab.site_file), "--env", "prod")
    assert result.rc == 3, result.stdout + result.stderr
    assert "--confirm-prod" in result.stderr
    wrong = lab.cli("destroy", str(lab.site_file), "--env", "prod", "--confirm-prod", "example")
    assert wrong.rc == 3
    assert lab.cli("status", str(lab.site_file), "--json").json == before


def test_apply_interrupted_by_sigint_then_rerun_converges(lab):
    result = lab.cli("destroy", str(lab.site_file), "--env", "dev")
    assert result.rc == 0, result.stderr
    assert not any(name.startswith(f"{lab.site.name}-dev-") for name in site_containers(lab.site.name))
    proc = lab.popen("apply", str(lab.site_file))
    wait_for_line(proc, "creating host")
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=120)
    assert rc in (130, 1), f"SIGINT ends the apply (exit {rc}): {proc.stdout.read()[-3000:] if proc.stdout else ''}"
    result = lab.cli("apply", str(lab.site_file), "--json")
    assert result.rc == 0, result.stdout + result.stderr
    assert lab.cli("plan", str(lab.site_file), "--json").json["changes"] == []
    app = next(h for h in lab.site.model.hosts_in("dev") if "app" in h.roles)
    db = next(h for h in lab.site.model.hosts_in("dev") if "db" in h.roles)
    assert "connected" in tcp_connect(f"{lab.site.name}-{app.name}", str(db.address), 5432).stdout


def test_apply_interrupted_during_the_playbooks_then_rerun_converges_and_changes_nothing(lab):
    # --full: on a converged lab a plain apply would leave every host out and run no playbook to interrupt
    proc = lab.popen("apply", str(lab.site_file), "--full")
    wait_for_line(proc, "inventory written")
    wait_for_line(proc, "PLAY")  # the playbook runs (before it, choosing the hosts reads each host's live state)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    result = lab.cli("apply", str(lab.site_file), "--json")
    assert result.rc == 0, result.stdout + result.stderr
    assert result.json["plan"] == [] and result.json["stats"]["changed"] == 0
    assert result.json["stats"]["ok"] > 0, "the run must have done something to count"
    # the interrupted run dropped its hosts' records before it started: the re-run ran them all again
    assert result.json["left_out"] == {}


def test_a_failed_host_is_a_one_line_summary_not_a_traceback(lab):
    container = f"{lab.site.name}-test-db1"
    in_container(container, "systemctl stop ssh.socket ssh.service; pkill -x sshd; true")
    try:
        result = lab.cli("apply", str(lab.site_file))
        assert result.rc == 1
        assert "Traceback" not in result.stdout + result.stderr
        assert re.search(r"test-db1 unreachable at '[^']+': ", result.stdout), result.stdout
        assert "run artifacts" in result.stdout
    finally:
        in_container(container, "systemctl start ssh.service")
    # nothing was changed on the unreachable host: once it answers again, the lab is whole without another apply
    host = next(h for h in lab.site.model.hosts if h.name == "test-db1")
    deadline = time.monotonic() + 30
    while ssh(lab.state.controller_key, lab.state.known_hosts, "provision", str(host.address), "true").returncode:
        assert time.monotonic() < deadline, "test-db1 does not answer SSH again"
        time.sleep(0.5)
    assert lab.cli("plan", str(lab.site_file), "--json").json["changes"] == []


@pytest.mark.shared_lab("destroy")
def test_destroy_leaves_nothing_of_the_site_behind(lab):
    site = lab.site.model
    result = lab.cli("destroy", str(lab.site_file), "--confirm-prod", site.site)
    assert result.rc == 0, result.stderr
    prefix = tag(site.site)
    assert site_containers(site.site) == set()
    assert containers_named(f"{site.site}-") == set()
    assert interfaces_with_prefix(prefix) == [], "no bridge or veth of the site"
    assert routes_via_prefix(prefix) == []
    assert not hostguard.present(site.site)
    assert not (lab.site_file.parent / "hosts.yml").exists()
    state = lab.state
    assert not state.keys_dir.exists() and not state.known_hosts.exists()
    assert state.runs_dir.is_dir(), "run artifacts stay: they are change evidence"
    assert lab.cli("plan", str(lab.site_file), "--json").json["changes"], "everything is to create again"
