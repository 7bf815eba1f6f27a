"""Verify by controls (issue 21): `--provision-controls` deselects the checks of every other control, so a partial
run gives verdicts for the controls it covered and none for the others; the history records what the run covered
and what started it; `provision verify --controls` takes IDs or families of the catalogue and refuses others; a
partial run is never recorded in the release ledger as a full verify."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLE, run_cli

from provisioner.conformance import verify as verify_module
from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.history import read_history
from provisioner.conformance.verify import CHECKS_DIR, check_controls, run_verify
from provisioner.engine import evidence
from provisioner.errors import InputError
from provisioner.site.load import load_site
from provisioner.workspace.site_state import SiteState

# Two checks that need no lab: NET-1 passes, ACC-2 fails. They run through the real plugin and the real verify.
CHECKS = """
import pytest


@pytest.mark.control("NET-1")
def test_segments_are_their_own(evidence):
    evidence.expect("each environment on its own segment")
    evidence.observe("as designed")


@pytest.mark.control("ACC-2")
def test_developer_key_refused(evidence):
    evidence.expect("alice's key refused by prod-app1")
    assert False, "alice's key was accepted by prod-app1"
"""


@pytest.fixture
def small_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SiteState:
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "pytest.ini").write_text((CHECKS_DIR / "pytest.ini").read_text())
    (checks / "test_small.py").write_text(CHECKS)
    monkeypatch.setattr(verify_module, "CHECKS_DIR", checks)
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    state = SiteState("example")
    state.ensure()
    state.known_hosts.write_text("")  # as after `provision apply`
    return state


def test_a_run_of_one_control_gives_no_verdict_for_a_deselected_one(small_suite: SiteState):
    result = run_verify(load_site(EXAMPLE), workers=1, controls=["NET-1"], trigger="watch:separation")
    assert {r["control"] for r in result.results} == {"NET-1"}, "ACC-2's check was deselected"
    assert result.verdicts() == {"NET-1": "pass"} and result.ok
    assert result.covered_verdicts() == {"NET-1": "pass"}
    [entry] = read_history(small_suite)
    assert entry["trigger"] == "watch:separation" and entry["controls"] == {"NET-1": "pass"}
    assert "ACC-2" not in entry["controls"], "a control the run did not cover is absent, never a pass"


def test_the_covered_failing_control_fails_and_the_full_run_covers_the_catalogue(small_suite: SiteState):
    partial = run_verify(load_site(EXAMPLE), workers=1, controls=["NET-1", "ACC-2"])
    assert partial.covered_verdicts() == {"NET-1": "pass", "ACC-2": "fail"} and not partial.ok
    assert "alice's key was accepted" in partial.failed[0]["evidence"]
    full = run_verify(load_site(EXAMPLE), workers=1)
    assert full.covered is None and {r["control"] for r in full.results} == {"NET-1", "ACC-2"}
    first, second = read_history(small_suite)
    assert first["controls"] == {"NET-1": "pass", "ACC-2": "fail"} and first["trigger"] == "manual"
    assert second["controls"]["ACC-2"] == "fail" and second["controls"]["NET-1"] == "pass"
    assert second["controls"]["NET-2"] == "skip", "a full run covers every control; one without results: skip"


def test_the_real_suite_collects_only_the_checks_of_the_named_controls():
    def collected(*extra: str) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(CHECKS_DIR), "-p", "provisioner.conformance.plugin",
             "-p", "no:cacheprovider", "-c", str(CHECKS_DIR / "pytest.ini"), "--rootdir", str(CHECKS_DIR),
             "--import-mode=importlib", "-q", "--co", f"--provision-site={EXAMPLE}", *extra],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line for line in proc.stdout.splitlines() if "::" in line]

    every = collected()
    acc2 = collected("--provision-controls=ACC-2")
    assert acc2 and all("test_developer_key_refused_by_production" in item for item in acc2), acc2
    net = collected("--provision-controls=NET-1,NET-2,NET-3")
    assert net and not set(net) & set(acc2) and len(net) < len(every)
    assert not any("test_access.py" in item for item in net), net


def test_families_and_ids_expand_in_catalogue_order_and_unknown_ones_are_refused():
    assert check_controls(["ACC-2", "NET"]) == ["NET-1", "NET-2", "NET-3", "ACC-2", "NET-4"]
    assert evidence.controls_named("NET,ACC-2") == ["NET-1", "NET-2", "NET-3", "ACC-2", "NET-4"]
    families = sorted({cid.split("-")[0] for cid in check_controls(["NET", "HYP", "ACC", "CUE", "CHG", "DATA"])})
    assert evidence.controls_named(",".join([*families, "LOG", "DOC"])) is None, "the whole catalogue: a full run"
    with pytest.raises(InputError, match="--controls NET-9: no control or family of the catalogue"):
        evidence.controls_named("NET,NET-9")
    with pytest.raises(InputError, match="--controls: empty"):
        evidence.controls_named(" , ")


def test_the_cli_refuses_an_unknown_control_with_exit_2_before_anything_runs(tmp_path: Path):
    result = run_cli("verify", str(EXAMPLE), "--controls", "NET,ACC-99", env={"PROVISION_STATE_DIR": str(tmp_path)})
    assert result.rc == 2, result.stdout + result.stderr
    assert "--controls ACC-99: no control or family of the catalogue; allowed: ACC, CHG" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir()), "nothing touched"


def test_a_partial_run_is_not_recorded_in_the_release_ledger(small_suite: SiteState, monkeypatch: pytest.MonkeyPatch):
    asked: list[Path] = []

    class Book:
        def record_verify(self, run_dir: Path, ok: bool) -> list[dict[str, str]]:
            asked.append(run_dir)
            return []

    monkeypatch.setattr(evidence.ReleaseBook, "open", classmethod(lambda cls, site: Book()))
    site = load_site(EXAMPLE)
    partial = evidence.verify(site, workers=1, keys=None, select=None, controls=["ACC-2"], trigger="watch:keys")
    assert asked == [] and partial.result.covered == ["ACC-2"]
    some = evidence.verify(site, workers=1, keys=None, select=None, controls=check_controls(["NET", "ACC"]))
    assert asked == [] and some.result.covered is not None, "NET and ACC are not the whole catalogue"
    everything = evidence.verify(site, workers=1, keys=None, select=None, controls=list(CONTROLS))
    assert asked == [everything.result.run_dir], "a run of every control is a full verify"
    assert everything.result.covered is None
