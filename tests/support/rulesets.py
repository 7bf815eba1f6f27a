"""Role templates rendered by Ansible's own templating, and nft to check what they render: shared by the unit
tests of the gateway's and the hosts' rulesets (tests/unit/roles/). nft runs in a throwaway network namespace
(`unshare -n`), so nothing outside it changes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template


def render_template(template: Path, variables: dict[str, Any]) -> str:
    text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(template.read_text()))
    return str(text)


def chain(ruleset: str, name: str) -> list[str]:
    """The rule lines of one chain (comments and blank lines left out)."""
    body = ruleset.split(f"  chain {name} {{\n", 1)[1].split("\n  }\n", 1)[0]
    return [line.strip() for line in body.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]


def nft_in_namespace(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-n", "nft", *args], input=stdin, capture_output=True, text=True, timeout=60)


PROBE = "table inet probe {\n  chain c {\n    type filter hook input priority 0;\n  }\n}\n"


def nft_usable() -> str | None:
    if not shutil.which("nft") or not shutil.which("unshare"):
        return "nft or unshare is not installed"
    probe = nft_in_namespace("-c", "-f", "-", stdin=PROBE)
    return None if probe.returncode == 0 else f"nft in a new network namespace fails here: {probe.stderr.strip()}"


NFT = pytest.mark.skipif(nft_usable() is not None, reason=str(nft_usable()))
