"""`provision verify`: run the conformance suite against a site, summarise per control."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.errors import ProvisionError
from provisioner.redact import Redactor
from provisioner.runner import new_run_dir
from provisioner.site import LoadedSite
from provisioner.state import SiteState

CHECKS_DIR = Path(__file__).resolve().parent / "checks"


@dataclass
class VerifyResult:
    run_dir: Path
    results: list[dict[str, Any]]
    pytest_rc: int

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] == "fail"]

    @property
    def ok(self) -> bool:
        return self.pytest_rc == 0 and not self.failed and bool(self.results)

    def by_control(self) -> dict[str, dict[str, int]]:
        summary: dict[str, dict[str, int]] = {cid: {"pass": 0, "fail": 0, "skip": 0} for cid in CONTROLS}
        for result in self.results:
            summary.setdefault(result["control"], {"pass": 0, "fail": 0, "skip": 0})[result["status"]] += 1
        return {cid: counts for cid, counts in summary.items() if sum(counts.values())}


def run_verify(
    site: LoadedSite, workers: int = 4, keys_dir: Path | None = None, select: str | None = None
) -> VerifyResult:
    state = SiteState(site.name)
    if not state.known_hosts.exists():
        raise ProvisionError(f"site '{site.name}' has not been applied here yet: run `provision apply` first")
    run_dir = new_run_dir(state, "verify")
    cmd = [
        sys.executable, "-m", "pytest", str(CHECKS_DIR),
        "-p", "provisioner.conformance.plugin", "-p", "no:cacheprovider",
        "-c", str(CHECKS_DIR / "pytest.ini"), "--rootdir", str(CHECKS_DIR), "--import-mode=importlib",
        "-q", "--no-header", "-rN", "--tb=line",
        f"--provision-site={site.path}", f"--provision-results={run_dir}",
        f"--junitxml={run_dir / 'junit.xml'}", "-o", "junit_family=xunit2",
    ]  # fmt: skip
    if workers > 1:
        cmd += ["-n", str(workers)]
    if keys_dir is not None:
        cmd.append(f"--provision-keys={keys_dir}")
    if select:
        cmd += ["-k", select]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    redactor = Redactor(state.secret_values())
    (run_dir / "pytest.log").write_text(redactor.text(proc.stdout + proc.stderr))
    results_file = run_dir / "results.json"
    if not results_file.exists():
        raise ProvisionError(f"the conformance suite did not run: see {run_dir / 'pytest.log'}")
    redactor.tree(run_dir)
    results = json.loads(results_file.read_text())["results"]
    return VerifyResult(run_dir, results, proc.returncode)
