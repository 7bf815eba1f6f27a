"""The environment gateway's nftables ruleset, rendered by Ansible's own templating for the example site (issue 18):
replies accepted only between the interfaces of declared paths, spoofed sources dropped per segment leg, every log
line rate-limited and apart from its verdict; and for the example with two access networks (people's workstations):
SSH, and only SSH, from each to the segments it reaches, everything else from it counted and rejected per pair.
Where `nft` and `unshare` work, nft itself checks the ruleset (`nft -c -f`) and loads it into a throwaway network
namespace (no lab: nothing outside that namespace changes)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import EXAMPLE, example_with_access_networks, write_site
from rulesets import NFT, chain, nft_in_namespace, render_template

from provisioner.ansible_run.inventory import build_inventory
from provisioner.site.load import load_site

ROLE = Path(__file__).resolve().parents[3] / "roles" / "env_gateway"
TEMPLATE = ROLE / "templates" / "etc" / "nftables.conf.j2"


def example_variables(site_file: Path = EXAMPLE) -> dict[str, Any]:
    """The role's variables as playbooks/site.yml maps the site's inventory onto them (the example by default)."""
    facts = build_inventory(load_site(site_file))["all"]["vars"]
    return {
        **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
        "ansible_managed": "Ansible managed",
        "env_gateway_management_cidr": facts["provisioner_management_cidr"],
        "env_gateway_management_interface": facts["provisioner_management_interface"],
        "env_gateway_segments": facts["provisioner_environments"],
        "env_gateway_access_networks": facts["provisioner_access_networks"],
        "env_gateway_flows": facts["provisioner_flows"],
    }


def render(variables: dict[str, Any]) -> str:
    return render_template(TEMPLATE, variables)


@pytest.fixture(scope="module")
def variables() -> dict[str, Any]:
    return example_variables()


@pytest.fixture(scope="module")
def ruleset(variables: dict[str, Any]) -> str:
    return render(variables)


@pytest.fixture(scope="module")
def access_variables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example with the office (reaches dev, test) and admins (dev, test, prod; admins_only) access networks."""
    return example_variables(write_site(tmp_path_factory.mktemp("access"), example_with_access_networks()))


@pytest.fixture(scope="module")
def access_ruleset(access_variables: dict[str, Any]) -> str:
    return render(access_variables)


def segments(variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in variables["env_gateway_segments"]}


def legs(variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every leg but management: the segments and the access networks."""
    return {s["name"]: s for s in variables["env_gateway_segments"] + variables["env_gateway_access_networks"]}


def reply_pairs(ruleset: str) -> set[tuple[str, str]]:
    pairs = set()
    for rule in chain(ruleset, "forward"):
        if "ct state established,related" not in rule:
            continue
        match = re.fullmatch(
            r'iifname "([^"]+)" oifname "([^"]+)" ct state established,related accept comment ".*"', rule
        )
        assert match, f"a reply rule not bound to an interface pair: {rule}"
        pairs.add((match.group(1), match.group(2)))
    return pairs


def test_replies_pass_only_between_the_interfaces_of_declared_paths(ruleset: str, variables: dict[str, Any]):
    seg = {name: s["interface"] for name, s in segments(variables).items()}
    mgmt = variables["env_gateway_management_interface"]
    forward = chain(ruleset, "forward")
    pairs = reply_pairs(ruleset)
    declared = {(mgmt, seg[e]) for e in seg} | {(seg["dev"], seg["test"])}  # the example's one flow: dev -> test
    assert pairs == declared | {(b, a) for a, b in declared}
    assert (seg["dev"], seg["prod"]) not in pairs and (seg["test"], seg["prod"]) not in pairs
    assert not any(r.startswith("ct state established") for r in forward + chain(ruleset, "input"))
    assert 'iifname "mgmt" ct state established,related accept' in " ".join(chain(ruleset, "input"))


def test_each_segment_leg_carries_only_its_own_prefix(ruleset: str, variables: dict[str, Any]):
    prerouting = chain(ruleset, "prerouting")
    assert "type filter hook prerouting priority raw; policy accept;" in ruleset, "before connection tracking"
    for name, segment in segments(variables).items():
        iface, cidr = segment["interface"], segment["cidr"]
        assert (
            f'iifname "{iface}" ip saddr != {cidr} counter name "spoofed_{name}" drop comment '
            f'"{iface} carries only {cidr}"' in prerouting
        )
        assert (
            f'iifname != {{ "lo", "{iface}" }} ip saddr {cidr} counter name "spoofed_{name}" drop comment '
            f'"{cidr} enters only on {iface}"' in prerouting
        )
        assert f"counter spoofed_{name} {{" in ruleset
    assert not any("accept" in rule for rule in prerouting)


def test_every_log_line_is_rate_limited_and_decides_nothing(ruleset: str):
    logs = [line.strip() for line in ruleset.splitlines() if " log prefix " in line or line.strip().startswith("log")]
    assert len(logs) >= 12 + 6 + 2, "denied pairs, spoofing, the gateway and the catch-all all log"
    for line in logs:
        assert "limit rate 10/second burst 20 packets log prefix" in line, line
        assert not re.search(r"\b(accept|drop|reject)\b", line), (
            f"a limited log line must not carry the verdict: {line}"
        )
    verdicts = [line for line in ruleset.splitlines() if re.search(r"\b(drop|reject)\b", line)]
    assert verdicts and not any("limit rate" in line for line in verdicts), (
        "over the limit a packet must still be refused"
    )


def test_every_denied_pair_still_has_its_named_counter_and_reject(ruleset: str):
    forward = chain(ruleset, "forward")
    for pair in ("dev_to_prod", "test_to_prod", "dev_to_test", "prod_to_dev", "dev_to_mgmt"):
        assert any(f'counter name "deny_{pair}" reject with icmpx type admin-prohibited' in r for r in forward), pair
    assert forward[-1] == "counter reject with icmpx type admin-prohibited"
    assert chain(ruleset, "input")[-1] == 'counter name "deny_gateway_input" reject with icmpx type admin-prohibited'


def test_flows_sharing_an_interface_pair_give_one_reply_rule(variables: dict[str, Any]):
    more = copy.deepcopy(variables)
    flow = next(f for f in more["env_gateway_flows"] if f["from"] == "dev" and f["to"] == "test")
    more["env_gateway_flows"] += [{**flow, "ports": [443]}, {**flow, "from": "test", "to": "dev", "ports": [8080]}]
    forward = chain(render(more), "forward")
    established = [r for r in forward if "ct state established" in r]
    assert len(established) == len(set(established)) == 2 * (len(more["env_gateway_segments"]) + 1)


def test_without_logging_nothing_logs(variables: dict[str, Any]):
    quiet = render({**variables, "env_gateway_log_denied": False})
    assert " log " not in quiet and "limit rate" not in quiet
    assert 'counter name "spoofed_prod" drop' in quiet


# ---- access networks ---------------------------------------------------------------------------------------------
def test_the_example_without_access_networks_has_no_access_rule(ruleset: str):
    assert "acc-" not in ruleset and "SSH from access network" not in ruleset


def test_an_access_network_reaches_the_segments_it_names_on_ssh_only(access_ruleset: str):
    forward = chain(access_ruleset, "forward")
    accepted = [r for r in forward if r.startswith('iifname "acc-') and " accept" in r and "ct state" not in r]
    assert sorted(accepted) == sorted(
        f'iifname "acc-{name}" ip saddr {cidr} oifname "seg-{env}" tcp dport 22 accept comment '
        f'"SSH from access network {name} to {env}"'
        for name, cidr, envs in (("office", "10.90.50.0/24", ("dev", "test")),
                                 ("admins", "10.90.60.0/28", ("dev", "test", "prod")))
        for env in envs
    )  # fmt: skip
    assert not any(
        r.startswith('iifname "acc-office"') and 'oifname "seg-prod"' in r and "accept" in r for r in forward
    )


def test_everything_else_from_or_to_an_access_network_is_counted_and_rejected_per_pair(access_ruleset: str):
    forward = chain(access_ruleset, "forward")
    zones = {"mgmt": "mgmt", "dev": "seg-dev", "test": "seg-test", "prod": "seg-prod",
             "office": "acc-office", "admins": "acc-admins"}  # fmt: skip
    for source in ("office", "admins"):
        for destination, interface in zones.items():
            if destination == source:
                continue
            rule = (
                f'iifname "{zones[source]}" oifname "{interface}" counter name "deny_{source}_to_{destination}" '
                "reject with icmpx type admin-prohibited"
            )
            assert rule in forward, rule
            assert f"counter deny_{source}_to_{destination} {{" in access_ruleset
            back = f'iifname "{interface}" oifname "{zones[source]}" counter name "deny_{destination}_to_{source}"'
            assert any(r.startswith(back) for r in forward), back
    ssh = forward.index('iifname "acc-office" ip saddr 10.90.50.0/24 oifname "seg-dev" tcp dport 22 accept comment '
                        '"SSH from access network office to dev"')  # fmt: skip
    deny = next(i for i, r in enumerate(forward) if 'counter name "deny_office_to_dev"' in r)
    assert ssh < deny, "SSH is accepted before the pair's deny rule"
    mgmt_to_office = [r for r in forward if r.startswith('iifname "mgmt"') and 'oifname "acc-' in r]
    assert mgmt_to_office and all("deny_mgmt_to_" in r or " log prefix " in r for r in mgmt_to_office), (
        "management does not reach into the access networks"
    )


def test_nothing_from_an_access_network_reaches_the_gateway_itself(access_ruleset: str):
    accepted = [r for r in chain(access_ruleset, "input") if "accept" in r]
    assert all(r == 'iif "lo" accept' or r.startswith('iifname "mgmt"') for r in accepted), accepted
    assert chain(access_ruleset, "input")[-1].endswith('counter name "deny_gateway_input" reject with icmpx type '
                                                       "admin-prohibited")  # fmt: skip


def test_replies_pass_between_an_access_network_and_the_segments_it_reaches_only(access_ruleset: str):
    pairs = reply_pairs(access_ruleset)
    reached = {("acc-office", "seg-dev"), ("acc-office", "seg-test"),
               ("acc-admins", "seg-dev"), ("acc-admins", "seg-test"), ("acc-admins", "seg-prod")}  # fmt: skip
    from_access = {p for p in pairs if "acc-office" in p or "acc-admins" in p}
    assert from_access == reached | {(b, a) for a, b in reached}
    assert ("acc-office", "seg-prod") not in pairs and ("mgmt", "acc-office") not in pairs


def test_each_access_network_leg_carries_only_its_own_prefix(access_ruleset: str, access_variables: dict[str, Any]):
    prerouting = chain(access_ruleset, "prerouting")
    for network in access_variables["env_gateway_access_networks"]:
        name, iface, cidr = network["name"], network["interface"], network["cidr"]
        assert (
            f'iifname "{iface}" ip saddr != {cidr} counter name "spoofed_{name}" drop comment '
            f'"{iface} carries only {cidr}"' in prerouting
        )
        assert (
            f'iifname != {{ "lo", "{iface}" }} ip saddr {cidr} counter name "spoofed_{name}" drop comment '
            f'"{cidr} enters only on {iface}"' in prerouting
        )
    assert len([r for r in prerouting if r.endswith('"') and " drop " in r]) == 2 * len(legs(access_variables))


def run_role_checks(tmp_path: Path, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """The role's own input checks (tasks/assert.yml) on localhost, with these variables: nothing else runs."""
    keys = [k for k in variables if k.startswith("env_gateway_")]
    play = {
        "name": "The gateway role's input checks", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Checks", "ansible.builtin.include_role": {"name": "env_gateway", "tasks_from": "assert"},
                   "vars": {k: variables[k] for k in keys}}],
    }  # fmt: skip
    playbook = tmp_path / "checks.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path),
        "ANSIBLE_ROLES_PATH": str(ROLE.parent), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }  # fmt: skip
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_role_refuses_an_access_network_into_production_unless_it_is_for_admins(
    tmp_path: Path, access_variables: dict[str, Any]
):
    """The role does not rely on site validation alone: used on its own, it stops before writing anything."""
    accepted = run_role_checks(tmp_path, access_variables)
    assert accepted.returncode == 0, accepted.stdout[-2000:]
    widened = copy.deepcopy(access_variables)
    widened["env_gateway_access_networks"][0]["reaches"].append("prod")  # the office, developers' desks
    refused = run_role_checks(tmp_path, widened)
    assert refused.returncode != 0
    assert "access network office reaches prod: not a segment the gateway routes, or a production" in " ".join(
        refused.stdout.split()
    ), refused.stdout[-2000:]
    clash = copy.deepcopy(access_variables)
    clash["env_gateway_access_networks"][0]["name"] = "dev"
    refused = run_role_checks(tmp_path, clash)
    assert refused.returncode != 0 and "two zones share a name: mgmt, dev, test, prod, dev, admins" in refused.stdout


# ---- nft itself, in a throwaway network namespace ---------------------------------------------------------------
@NFT
@pytest.mark.parametrize("log_denied", [True, False])
@pytest.mark.parametrize("site", ["example", "with access networks"])
def test_nft_accepts_the_ruleset(
    variables: dict[str, Any], access_variables: dict[str, Any], tmp_path: Path, log_denied: bool, site: str
):
    chosen = variables if site == "example" else access_variables
    path = tmp_path / "nftables.conf"
    path.write_text(render({**chosen, "env_gateway_log_denied": log_denied}))
    checked = nft_in_namespace("-c", "-f", str(path))
    assert checked.returncode == 0, checked.stderr


@NFT
def test_nft_refuses_a_broken_ruleset(ruleset: str, tmp_path: Path):
    """The check can fail: the same ruleset with a limit nft does not know is refused."""
    path = tmp_path / "broken.conf"
    path.write_text(ruleset.replace("limit rate 10/second", "limit rate 10/fortnight", 1))
    checked = nft_in_namespace("-c", "-f", str(path))
    assert checked.returncode != 0 and "fortnight" in checked.stderr


def loaded_rules(ruleset: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The ruleset loaded into a namespace of its own and listed back by nft as JSON."""
    path = tmp_path / "nftables.conf"
    path.write_text(ruleset)
    listed = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"nft -f {path} && nft -j list ruleset"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    return [item["rule"] for item in json.loads(listed.stdout)["nftables"] if "rule" in item]


def bound_reply_rules(rules: list[dict[str, Any]]) -> int:
    """How many forward rules accept established or related packets; each must match both interfaces."""
    bound = 0
    for rule in (r for r in rules if r["chain"] == "forward"):
        states = [m["match"]["right"] for m in rule["expr"] if m.get("match", {}).get("left", {}).get("ct")]
        if any("established" in state for state in states):
            keys = {m["match"]["left"].get("meta", {}).get("key") for m in rule["expr"] if "match" in m}
            assert {"iifname", "oifname"} <= keys, rule
            bound += 1
    return bound


def spoof_drops(rules: list[dict[str, Any]]) -> int:
    return len([r for r in rules if r["chain"] == "prerouting" and any("drop" in e for e in r["expr"])])


@NFT
def test_loaded_ruleset_as_nft_reads_it(ruleset: str, tmp_path: Path, variables: dict[str, Any]):
    """Loaded into a namespace of its own and listed back as JSON: every forward rule accepting established or
    related packets matches an input and an output interface; the spoof rules drop."""
    rules = loaded_rules(ruleset, tmp_path)
    assert bound_reply_rules(rules) == 2 * (len(variables["env_gateway_segments"]) + 1), (
        "management <-> each segment, dev <-> test"
    )
    assert spoof_drops(rules) == 2 * len(variables["env_gateway_segments"])


@NFT
def test_loaded_ruleset_with_access_networks_as_nft_reads_it(access_ruleset: str, tmp_path: Path):
    """The same with the office (dev, test) and admins (dev, test, prod) networks: their reply rules are bound to
    the interface pairs of what they reach, and their legs have spoof rules of their own."""
    rules = loaded_rules(access_ruleset, tmp_path)
    assert bound_reply_rules(rules) == 2 * (3 + 1 + 2 + 3), "management <-> 3 segments, dev <-> test, office, admins"
    assert spoof_drops(rules) == 2 * (3 + 2)
    ssh = [
        r for r in rules
        if r["chain"] == "forward" and any("accept" in e for e in r["expr"])
        and any(m.get("match", {}).get("right") in ("acc-office", "acc-admins") for m in r["expr"])
        and not any(m.get("match", {}).get("left", {}).get("ct") for m in r["expr"])
    ]  # fmt: skip
    assert len(ssh) == 5
    for rule in ssh:
        ports = [m["match"]["right"] for m in rule["expr"] if m.get("match", {}).get("left", {}).get("payload", {})
                 .get("field") == "dport"]  # fmt: skip
        assert ports == [22], rule
