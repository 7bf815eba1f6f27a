"""The environment gateway's nftables ruleset, rendered by Ansible's own templating for the example site (issue 18):
replies accepted only between the interfaces of declared paths, spoofed sources dropped per segment leg, every log
line rate-limited and apart from its verdict. Where `nft` and `unshare` work, nft itself checks the ruleset
(`nft -c -f`) and loads it into a throwaway network namespace (no lab: nothing outside that namespace changes)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from helpers import EXAMPLE

from provisioner.ansible_run.inventory import build_inventory
from provisioner.site.load import load_site

ROLE = Path(__file__).resolve().parents[3] / "roles" / "env_gateway"
TEMPLATE = ROLE / "templates" / "etc" / "nftables.conf.j2"


def example_variables() -> dict[str, Any]:
    """The role's variables as playbooks/site.yml maps the example's inventory onto them."""
    facts = build_inventory(load_site(EXAMPLE))["all"]["vars"]
    return {
        **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
        "ansible_managed": "Ansible managed",
        "env_gateway_management_cidr": facts["provisioner_management_cidr"],
        "env_gateway_management_interface": facts["provisioner_management_interface"],
        "env_gateway_segments": facts["provisioner_environments"],
        "env_gateway_flows": facts["provisioner_flows"],
    }


def render(variables: dict[str, Any]) -> str:
    text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(TEMPLATE.read_text()))
    return str(text)


def chain(ruleset: str, name: str) -> list[str]:
    """The rule lines of one chain (comments and blank lines left out)."""
    body = ruleset.split(f"  chain {name} {{\n", 1)[1].split("\n  }\n", 1)[0]
    return [line.strip() for line in body.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def variables() -> dict[str, Any]:
    return example_variables()


@pytest.fixture(scope="module")
def ruleset(variables: dict[str, Any]) -> str:
    return render(variables)


def segments(variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in variables["env_gateway_segments"]}


def test_replies_pass_only_between_the_interfaces_of_declared_paths(ruleset: str, variables: dict[str, Any]):
    seg = {name: s["interface"] for name, s in segments(variables).items()}
    mgmt = variables["env_gateway_management_interface"]
    forward = chain(ruleset, "forward")
    established = [r for r in forward if "ct state established,related" in r]
    pairs = set()
    for rule in established:
        match = re.fullmatch(
            r'iifname "([^"]+)" oifname "([^"]+)" ct state established,related accept comment ".*"', rule
        )
        assert match, f"a reply rule not bound to an interface pair: {rule}"
        pairs.add(match.groups())
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


# ---- nft itself, in a throwaway network namespace ---------------------------------------------------------------
def nft_in_namespace(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-n", "nft", *args], input=stdin, capture_output=True, text=True, timeout=60)


PROBE = "table inet probe {\n  chain c {\n    type filter hook input priority 0;\n  }\n}\n"


def nft_usable() -> str | None:
    if not shutil.which("nft") or not shutil.which("unshare"):
        return "nft or unshare is not installed"
    probe = nft_in_namespace("-c", "-f", "-", stdin=PROBE)
    return None if probe.returncode == 0 else f"nft in a new network namespace fails here: {probe.stderr.strip()}"


NFT = pytest.mark.skipif(nft_usable() is not None, reason=str(nft_usable()))


@NFT
@pytest.mark.parametrize("log_denied", [True, False])
def test_nft_accepts_the_ruleset(variables: dict[str, Any], tmp_path: Path, log_denied: bool):
    path = tmp_path / "nftables.conf"
    path.write_text(render({**variables, "env_gateway_log_denied": log_denied}))
    checked = nft_in_namespace("-c", "-f", str(path))
    assert checked.returncode == 0, checked.stderr


@NFT
def test_nft_refuses_a_broken_ruleset(ruleset: str, tmp_path: Path):
    """The check can fail: the same ruleset with a limit nft does not know is refused."""
    path = tmp_path / "broken.conf"
    path.write_text(ruleset.replace("limit rate 10/second", "limit rate 10/fortnight", 1))
    checked = nft_in_namespace("-c", "-f", str(path))
    assert checked.returncode != 0 and "fortnight" in checked.stderr


@NFT
def test_loaded_ruleset_as_nft_reads_it(ruleset: str, tmp_path: Path, variables: dict[str, Any]):
    """Loaded into a namespace of its own and listed back as JSON: every forward rule accepting established or
    related packets matches an input and an output interface; the spoof rules drop."""
    path = tmp_path / "nftables.conf"
    path.write_text(ruleset)
    listed = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"nft -f {path} && nft -j list ruleset"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rules = [item["rule"] for item in json.loads(listed.stdout)["nftables"] if "rule" in item]
    forward = [r for r in rules if r["chain"] == "forward"]
    bound = 0
    for rule in forward:
        states = [m["match"]["right"] for m in rule["expr"] if m.get("match", {}).get("left", {}).get("ct")]
        if any("established" in state for state in states):
            keys = {m["match"]["left"].get("meta", {}).get("key") for m in rule["expr"] if "match" in m}
            assert {"iifname", "oifname"} <= keys, rule
            bound += 1
    assert bound == 2 * (len(variables["env_gateway_segments"]) + 1), "management <-> each segment, dev <-> test"
    spoof = [r for r in rules if r["chain"] == "prerouting" and any("drop" in e for e in r["expr"])]
    assert len(spoof) == 2 * len(variables["env_gateway_segments"])
