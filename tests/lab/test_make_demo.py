"""`make demo` on a fresh clone builds the example lab, verifies it, writes the evidence pack, says where they are."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT
from probes import site_containers

pytestmark = [pytest.mark.lab, pytest.mark.own_lab, pytest.mark.timeout(1800)]


def test_make_demo_on_a_fresh_clone(tmp_path: Path):
    assert not site_containers("example"), (
        "an 'example' lab from another checkout is running on this machine; destroy it first "
        "(make clean-lab in that checkout)"
    )
    clone = tmp_path / "provisioner"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISION_", "VIRTUAL_ENV"))}
    try:
        demo = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=1700)
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
        match = re.search(r"run artifacts: (\S+)", demo.stdout)
        assert match, demo.stdout[-2000:]
        run_dir = Path(match.group(1))
        assert run_dir.is_relative_to(clone / ".provision" / "example" / "runs")
        assert list(run_dir.glob("artifacts/job/job_events/*.json"))
        assert "successful" in demo.stdout
        pack = re.search(r"evidence pack: (\S+)", demo.stdout)
        assert pack, demo.stdout[-2000:]
        pack_dir = Path(pack.group(1))
        assert pack_dir.is_relative_to(clone / ".provision" / "example" / "evidence" / "reports")
        files = {p.name for p in pack_dir.iterdir()}
        assert {"report.html", "report.pdf", "MANIFEST.sha256", "MANIFEST.sha256.sig"} <= files
        checked = subprocess.run(
            [str(clone / ".venv" / "bin" / "provision"), "report", "verify", str(pack_dir)],
            cwd=clone, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "the key was not pinned" in " ".join(checked.stderr.split()), checked.stderr
        key = clone / ".provision" / "example" / "signing" / "evidence_ed25519.pub"
        pinned = subprocess.run(
            [str(clone / ".venv" / "bin" / "provision"), "report", "verify", str(pack_dir), "--key", str(key)],
            cwd=clone, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert pinned.returncode == 0 and "signed by the pinned key" in pinned.stdout, pinned.stdout + pinned.stderr
        assert len(list(pack_dir.glob("verify-run/*-verify-*/results.json.sig"))) == 1, "the run's signed results"
        # Q3 names who signed r1's decisions, each signature checked against the key the site file lists
        html = " ".join((pack_dir / "report.html").read_text().split())
        for decision, person in (("create", "alice"), ("approve", "erin")):
            shown = re.search(
                rf"{decision} by <b>{person}</b> \(key <code>[^<]+</code>\): signature <span[^>]*>(\w+)", html
            )
            assert shown and shown.group(1) == "verified", (decision, person)
        assert len(site_containers("example")) == 7
        # the example shop's first release went the whole path: dev, test, a passing verify, erin's approval, prod
        assert "r1 deployed to prod as deploy" in " ".join(demo.stdout.split()), demo.stdout[-3000:]
        ledger = subprocess.run([".venv/bin/provision", "release", "show", "r1", "--site", "example", "--json"],
                                cwd=clone, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert ledger.returncode == 0 and json.loads(ledger.stdout)["approvers"] == ["erin"], ledger.stdout
        again = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0 and "0 changed" in again.stdout, again.stdout[-2000:]
        assert "release r1 is already recorded" in again.stdout
    finally:
        subprocess.run(["make", "clean-lab"], cwd=clone, env=env, capture_output=True, timeout=600)
    assert not site_containers("example")
