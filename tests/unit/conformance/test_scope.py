"""Attempts not made fail verify unless the site declares them out of scope, by someone allowed to."""

from __future__ import annotations

from pathlib import Path

import yaml

from provisioner.conformance import scope
from provisioner.conformance.verify import VerifyResult
from provisioner.site.load import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories/example/site.yml"


def skipped(control: str, reason: str) -> dict:
    return {"control": control, "check": "c", "host": "alice", "status": "skip", "evidence": f"Skipped: {reason}"}


def site_with(tmp_path, out_of_scope):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["out_of_scope"] = out_of_scope
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    return load_site(str(path))


def test_an_attempt_not_made_fails_verify(tmp_path):
    site = site_with(tmp_path, [])
    rows = scope.mark([skipped("ACC-2", f"{scope.NOT_ATTEMPTED}no private key for alice")], site.model)
    assert rows[0]["not_attempted"] is True
    result = VerifyResult(tmp_path, rows, 0)
    assert not result.ok and result.unattempted == rows


def test_a_declared_one_passes_and_says_why(tmp_path):
    site = site_with(tmp_path, [{"control": "ACC-2", "reason": "no keys at this site", "decided_by": "dave"}])
    rows = scope.mark(
        [
            skipped("ACC-2", f"{scope.NOT_ATTEMPTED}no private key for alice"),
            {"control": "ACC-2", "check": "d", "host": "x", "status": "pass", "evidence": ""},
        ],
        site.model,
    )
    assert rows[0]["out_of_scope"] == {"reason": "no keys at this site", "decided_by": "dave"}
    assert "not_attempted" not in rows[0]
    assert VerifyResult(tmp_path, rows, 0).ok


def test_a_skip_that_is_not_an_attempt_is_left_alone(tmp_path):
    site = site_with(tmp_path, [])
    rows = scope.mark([skipped("ACC-6", "the lxc backend gives people no hypervisor accounts")], site.model)
    assert "not_attempted" not in rows[0] and "out_of_scope" not in rows[0]


def test_marking_twice_gives_the_same_rows(tmp_path):
    site = site_with(tmp_path, [])
    once = scope.mark([skipped("ACC-2", f"{scope.NOT_ATTEMPTED}x")], site.model)
    assert scope.mark(once, site.model) == once
