"""NET-2 from the access networks (issue 18) in `provision verify`'s suite: one check per access network the site
declares, and none at all — not a skipped one, which the report would read as a gap — for a site that declares
none. Collection only: nothing is attempted, no lab is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import EXAMPLE, ROOT, example_with_access_networks, write_site

CHECKS = ROOT / "provisioner" / "conformance" / "checks" / "test_network.py"


def collected(site_file: Path, folder: Path) -> str:
    command = [
        sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
        "-p", "provisioner.conformance.plugin", "--provision-site", str(site_file), str(CHECKS),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_one_reachability_check_per_access_network(tmp_path: Path):
    site_file = write_site(tmp_path / "site", example_with_access_networks())
    out = collected(site_file, tmp_path)
    assert "test_reachability_from_each_access_network[office]" in out
    assert "test_reachability_from_each_access_network[admins]" in out
    assert "deselected" not in out


def test_a_site_without_access_networks_has_no_such_check_not_even_a_skipped_one(tmp_path: Path):
    out = collected(EXAMPLE, tmp_path)
    assert "test_reachability_from_each_access_network" not in out
    assert "(1 deselected)" in out
    assert "test_reachability_from_each_environment[dev-app1]" in out, "the environments' checks stay"
