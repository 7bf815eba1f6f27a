"""The controller's guard table: nft itself accepts it (in a throwaway network namespace), and it closes the
segments' way to the controller only where the backend names its segments' bridges."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from provisioner.backends.network import hostguard

needs_nft = pytest.mark.skipif(
    shutil.which("nft") is None or shutil.which("unshare") is None, reason="nft and unshare are needed"
)


def load_in_namespace(text: str) -> dict:
    script = "nft -f - && nft -j list ruleset"
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], input=text, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_nft
def test_the_input_chain_drops_what_a_segment_sends_to_the_controller():
    loaded = load_in_namespace(hostguard.ruleset("shop", "pvab-mgmt", ["pvab-dev", "pvab-prod"]))
    chains = {i["chain"]["name"]: i["chain"] for i in loaded["nftables"] if "chain" in i}
    assert chains["input"]["hook"] == "input" and chains["input"]["policy"] == "accept"
    rules = [i["rule"] for i in loaded["nftables"] if "rule" in i and i["rule"]["chain"] == "input"]
    (rule,) = rules
    text = json.dumps(rule["expr"])
    assert '"pvab-dev"' in text and '"pvab-prod"' in text and '"drop"' in text and "from_segments" in text
    assert '"pvab-mgmt"' not in text, "the management bridge is the controller's own: not closed"


@needs_nft
def test_without_segment_bridges_there_is_no_input_chain():
    loaded = load_in_namespace(hostguard.ruleset("shop", "pvab-mgmt"))
    assert not [i for i in loaded["nftables"] if "chain" in i and i["chain"]["name"] == "input"]
