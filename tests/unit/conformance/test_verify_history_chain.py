"""The verification history is a hash chain signed with the site's evidence key (issue 21, item 5): deleting,
reordering or editing one entry, forging a signature or cutting the end off fails the history check, naming the
line and what is wrong; `provision history` exits 1 then and 0 when it holds; stock ssh-keygen checks an entry."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import EXAMPLE, run_cli
from history_runs import at, delete_line, edit_line, lines, record, rewrite, swap_lines

from provisioner.conformance import history
from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.history import NAMESPACE, check_history, read_history
from provisioner.workspace import signing
from provisioner.workspace.hash_chain import entry_hash
from provisioner.workspace.site_state import SiteState

VERDICTS = [{"NET-2": "pass"}, {"NET-2": "pass"}, {"NET-2": "fail"}, {"NET-2": "pass"}, {"NET-2": "pass"}]


@pytest.fixture
def state(tmp_path) -> SiteState:
    state = SiteState("example", tmp_path / "example")
    for minute, verdicts in enumerate(VERDICTS):
        record(state, at(minute * 20), verdicts)
    return state


def kinds_at(state: SiteState) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for problem in check_history(state):
        found.setdefault(problem.line, set()).add(problem.kind)
    return found


def test_deleting_one_entry_fails_the_check_naming_the_line(state):
    delete_line(state, 3)  # the failed run
    problems = check_history(state)
    [deleted] = [p for p in problems if p.kind == "deleted"]
    assert deleted.line == 3 and "entry 3 missing before entry 4" in deleted.message, str(deleted)
    assert str(deleted).startswith("line 3: ")
    assert not [p for p in problems if p.kind in ("edited", "signature", "reordered")], problems
    assert any(p.line == 0 and p.kind == "cut off" for p in problems), "the head counts one entry more"


def test_reordering_two_entries_fails_as_reordered_not_deleted(state):
    swap_lines(state, 2, 3)
    problems = check_history(state)
    assert {p.line for p in problems if p.kind == "reordered"} == {2, 3}, problems
    assert not [p for p in problems if p.kind in ("deleted", "edited", "signature", "cut off")], problems
    assert "entry 2 stands elsewhere (line 3): reordered" in str(problems[0])


def test_editing_an_entry_fails_as_edited_on_its_line(state):
    edit_line(state, 3, lambda e: e["controls"].update({"NET-2": "pass"}))
    assert kinds_at(state) == {3: {"edited"}}, "the signature covers the stored hash, which no longer matches"
    assert "line 3: content does not match its hash: the entry was edited" in map(str, check_history(state))


def test_an_edited_entry_rehashed_fails_its_signature_and_the_next_link(state):
    def rehash(entry):
        entry["controls"]["NET-2"] = "pass"
        entry["hash"] = entry_hash(entry)

    edit_line(state, 3, rehash)
    assert kinds_at(state) == {3: {"signature"}, 4: {"chain"}}


def test_an_entry_signed_with_another_key_fails_its_signature(state, tmp_path):
    intruder = SiteState("example", tmp_path / "intruder")

    def forge(entry):
        entry["controls"]["NET-2"] = "pass"
        entry["hash"] = entry_hash(entry)
        entry["sig"] = signing.sign(intruder, entry["hash"].encode(), NAMESPACE)

    edit_line(state, 3, forge)
    assert 3 in kinds_at(state) and "signature" in kinds_at(state)[3]


def test_a_signature_from_another_namespace_is_refused(state):
    """The release ledger's signatures are no history signatures, even by the same key."""

    def other_namespace(entry):
        entry["sig"] = signing.sign(state, entry["hash"].encode(), "provision-ledger")

    edit_line(state, 2, other_namespace)
    assert kinds_at(state) == {2: {"signature"}}


def test_cutting_the_last_entries_off_fails_at_the_head(state):
    rewrite(state, lines(state)[:-2])
    problems = check_history(state)
    assert [(p.line, p.kind) for p in problems] == [(0, "cut off")], problems
    assert "the head records 5 entries but the verification history holds 3" in problems[0].message


def test_a_line_that_is_not_json_is_named(state):
    current = lines(state)
    current[1] = "{not json\n"
    rewrite(state, current)
    assert "unreadable" in kinds_at(state)[2]


def test_an_intact_history_holds_and_read_history_returns_every_run(state):
    assert check_history(state) == []
    entries = read_history(state)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert [e["controls"] for e in entries] == VERDICTS


def test_an_entry_has_the_shared_fields_and_uncovered_controls_are_absent(tmp_path):
    state = SiteState("example", tmp_path / "example")
    rows = [{"control": "NET-2", "status": "pass"}, {"control": "ACC-2", "status": "fail"},
            {"control": "ACC-3", "status": "waived"}, {"control": "ACC-1", "status": "pass"}]  # fmt: skip
    attempts = {"since": "a", "until": "b", "gateway": {"read": False, "why": "x", "by_pair": {}}}
    entry = history.record_run(
        state, tmp_path / "r1", rows, "sha256:ab", "SHA256:k", trigger="watch:hourly",
        covered=["NET-2", "ACC-2", "ACC-3", "DATA-1"], attempts=attempts, now=at(0),
    )  # fmt: skip
    assert entry["time"] == "2026-03-01T00:00:00+00:00" and entry["run"] == "r1"
    assert entry["trigger"] == "watch:hourly" and entry["attempts"] == attempts
    assert entry["controls"] == {"NET-2": "pass", "ACC-2": "fail", "ACC-3": "waived", "DATA-1": "skip"}
    assert "ACC-1" not in entry["controls"], "a control the run did not cover is absent, never pass"
    assert entry["failed_controls"] == ["ACC-2"] and entry["counts"]["fail"] == 1
    assert entry["results_digest"] == "sha256:ab" and entry["signer"] == "SHA256:k"
    assert {"seq", "prev", "hash", "sig"} <= set(entry)
    whole = history.record_run(state, tmp_path / "r2", rows, now=at(1))
    assert whole["trigger"] == "manual"  # a full run covers the whole catalogue; without a result: skip
    assert {k: v for k, v in whole["controls"].items() if v != "skip"} == {
        "NET-2": "pass", "ACC-2": "fail", "ACC-3": "waived", "ACC-1": "pass"
    }  # fmt: skip
    assert set(whole["controls"]) == set(CONTROLS) and whole["controls"]["DATA-1"] == "skip"
    assert "attempts" not in whole


def test_the_old_unchained_history_is_left_alone_and_not_read(tmp_path):
    state = SiteState("example", tmp_path / "example")
    state.evidence_dir.mkdir(parents=True)
    old = state.evidence_dir / history.UNCHAINED_FILE
    old.write_text(json.dumps({"time": "2025-01-01T00:00:00+00:00", "run": "old", "counts": {"pass": 1}}) + "\n")
    record(state, at(0), {"NET-2": "pass"})
    assert [e["run"] for e in read_history(state)] != ["old"] and len(read_history(state)) == 1
    assert old.read_text().count("\n") == 1 and check_history(state) == []


def test_stock_ssh_keygen_checks_an_entry_signature(state, tmp_path):
    """The recipe in the README: the signed data is the entry's `hash`, 64 hex characters without a newline."""
    entry = json.loads(lines(state)[2])
    (tmp_path / "allowed_signers").write_text(
        f'evidence@example namespaces="provision-verify-history" {signing.public_key(state)}\n'
    )
    (tmp_path / "entry.sig").write_text(entry["sig"] + "\n")
    script = (
        f"printf %s {entry['hash']} | ssh-keygen -Y verify -f allowed_signers -I evidence@example "
        "-n provision-verify-history -s entry.sig"
    )
    good = subprocess.run(script, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert good.returncode == 0 and 'Good "provision-verify-history" signature' in good.stdout, good.stderr
    bad = subprocess.run(script.replace(entry["hash"], entry_hash({**entry, "run": "x"})), shell=True, cwd=tmp_path,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode != 0
    assert entry_hash(entry) == entry["hash"], "and the hash is the SHA-256 of the canonical JSON"


def test_provision_history_exits_0_when_it_holds_and_1_naming_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path))
    state = SiteState("example")
    for minute, verdicts in enumerate(VERDICTS):
        record(state, at(minute * 20), verdicts)
    env = {"PROVISION_STATE_DIR": str(tmp_path)}
    holds = run_cli("history", str(EXAMPLE), env=env)
    assert holds.rc == 0 and "holds: 5 entries, chained and signed" in " ".join(holds.stdout.split()), holds
    delete_line(state, 3)
    broken = run_cli("history", str(EXAMPLE), "--json", env=env)
    assert broken.rc == 1, broken
    report = json.loads(broken.stdout)
    assert not report["ok"] and report["entries"] == 4
    assert {"line": 3, "kind": "deleted"}.items() <= report["problems"][0].items(), report["problems"]
    text = run_cli("history", str(EXAMPLE), env=env)
    assert text.rc == 1 and "deleted: line 3: entry 3 missing before entry 4" in " ".join(text.stdout.split())
