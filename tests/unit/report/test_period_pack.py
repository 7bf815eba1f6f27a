"""The period in the evidence pack: the HTML carries the timeline strips as an SVG picture, the PDF draws it too,
the JSON holds the period's data, the pack stays manifest-signed (`provision report verify` passes); bad dates
are refused before anything is read or written."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
from helpers import EXAMPLE, run_cli
from history_runs import at, delete_line, edit_line, lines, record, rewrite
from report_fixtures import build_report, example_site, run_in, verify_md_commands

from provisioner.conformance.history import history_path
from provisioner.report import collect, period
from provisioner.report.manifest import verify_pack
from provisioner.report.pack import JSON_FILE, PDF, write_pack
from provisioner.report.render_html import render_html
from provisioner.site.model import WatchSchedule, WatchSettings
from provisioner.workspace.hash_chain import entry_hash
from provisioner.workspace.site_state import SiteState

SVG = "{http://www.w3.org/2000/svg}"
SITE = example_site(watch=WatchSettings(schedules=[WatchSchedule(name="net", every="20m", controls=["NET"])]))


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> SiteState:
    state = SiteState("example", tmp_path_factory.mktemp("period") / "example")
    for minute, verdict in ((0, "pass"), (20, "pass"), (40, "fail"), (60, "pass"), (80, "pass")):
        record(state, at(minute), {"NET-2": verdict, "NET-1": "pass"}, trigger="watch:net", name=f"run{minute}")
    return state


def period_report(state: SiteState) -> dict:
    section = collect.period_section(SITE, state, period.Period(at(0), at(100 + 60 * 24 * 2)))
    return collect.with_period(build_report(state=state), section)


def timeline(page: str) -> ET.Element:
    start = page.index('<svg xmlns="http://www.w3.org/2000/svg" width="720"')
    return ET.fromstring(page[start : page.index("</svg>", start) + len("</svg>")])


def test_the_html_draws_each_control_as_a_strip_with_its_failure_visible(state):
    page = render_html(period_report(state))
    assert 'id="period"' in page and page.index('id="period"') < page.index('id="questions"')
    svg = timeline(page)
    rects = [r for r in svg.iter(f"{SVG}rect") if r.get("data-control")]
    assert {r.get("data-control") for r in rects} == {"NET-1", "NET-2", "NET-3"}, "NET-4 is the report's own"
    assert [r.get("class") for r in rects if r.get("data-control") == "NET-3"] == ["seg-not-verified"], "never run"
    [fail] = [r for r in rects if r.get("class") == "seg-fail"]
    assert fail.get("data-control") == "NET-2" and float(fail.get("width")) >= 2.0, "a 20-minute fault in two days"
    assert any(r.get("class") == "seg-not-verified" for r in rects), "the time after the last run is a gap"
    assert "first seen failing (start)" in page and "run40" in page and "run60" in page
    assert "History check" in page and "holds" in page


def test_the_pdf_carries_the_timeline_picture_and_the_windows(state, tmp_path):
    folder = write_pack(period_report(state), tmp_path / "pack", state)
    text = " ".join(subprocess.run(["pdftotext", str(folder / PDF), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())  # fmt: skip
    assert "Timeline per control" in text and "Failure windows" in text
    assert "not verified" in text and "NET-2" in text
    pictures = subprocess.run(["pdftotext", "-f", "1", "-l", "3", str(folder / PDF), "-"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    assert "2026-03-01T00:00:00+00:00" in pictures, "the strip's own axis label is drawn into the PDF"


def test_the_period_pack_is_signed_and_report_verify_passes(state, tmp_path):
    folder = write_pack(period_report(state), tmp_path / "pack", state)
    assert verify_pack(folder) == []
    assert run_cli("report", "verify", str(folder)).rc == 0
    data = json.loads((folder / JSON_FILE).read_text())
    assert data["period"]["windows"][0]["start"]["run"] == "run40" and "period_svg" not in data


def test_a_deleted_entry_is_named_in_the_pack(tmp_path):
    state = SiteState("example", tmp_path / "example")
    for minute in range(0, 100, 20):
        record(state, at(minute), {"NET-2": "pass"}, trigger="watch:net")
    delete_line(state, 2)
    page = render_html(period_report(state))
    assert "does not hold" in page and "deleted: line 2: entry 2 missing before entry 3" in page
    assert 'class="status status-history-broken">history broken' in page


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--from", "2026-01-01", "--to", "2025-12-31"], "is not before --to"),
        (["--from", "2026-02-30", "--to", "2026-03-01"], "--from 2026-02-30: not a date"),
        (["--from", "2026-01-01"], "--from needs --to too"),
    ],
)
def test_bad_period_arguments_exit_2_and_write_nothing(tmp_path, args, said):
    result = run_cli("report", str(EXAMPLE), *args, env={"PROVISION_STATE_DIR": str(tmp_path)})
    assert result.rc == 2 and said in " ".join(result.stderr.split()), result
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_provision_report_from_to_writes_the_period_into_the_pack(tmp_path, monkeypatch):
    """The command line end to end but for the lab: the latest run and live state as recorded (collect is the
    only part replaced); the history is the real one of the site's state."""
    from typer.testing import CliRunner

    from provisioner.cli import app
    from provisioner.engine import evidence

    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    state = SiteState("example")
    for minute, verdict in ((0, "pass"), (30, "fail"), (60, "pass")):
        record(state, at(minute), {"NET-2": verdict}, name=f"run{minute}")
    monkeypatch.setattr(evidence, "collect", lambda site, state: build_report(state=state))
    runner = CliRunner(env={"PROVISION_STATE_DIR": str(tmp_path / "state")})
    args = ["report", "example", "--out", str(tmp_path / "pack"), "--from", "2026-03-01", "--to", "2026-03-02"]
    made = runner.invoke(app, [*args, "--json"])
    assert made.exit_code == 0, made.output
    summary = json.loads(made.stdout)["period"]
    assert summary["from"] == "2026-03-01T00:00:00+00:00" and summary["history_ok"]
    [window] = summary["windows"]
    assert (window["start"]["run"], window["end"]["run"], window["repair"]) == ("run30", "run60", "30m 00s")
    assert summary["verdict"]["status"] == "at risk"
    assert run_cli("report", "verify", str(tmp_path / "pack")).rc == 0
    text = runner.invoke(app, [*args[:3], str(tmp_path / "pack2"), *args[4:]])
    assert text.exit_code == 0, text.output
    said = " ".join(text.stdout.split())
    assert "NET-2 failing from 2026-03-01T00:30:00+00:00 (run run30): repaired 2026-03-01T01:00:00+00:00" in said


# ---- the history itself travels with a period pack, checkable with stock tools -------------------------------
def history_commands(folder) -> list[str]:
    return [c for c in verify_md_commands(folder) if "history/" in c]


def test_the_history_in_the_pack_checks_out_with_stock_tools(state, tmp_path):
    """The chain and its head as the controller holds them, and each entry as the bytes its hash covers: the
    commands VERIFY.md gives (sha256sum, ssh-keygen, grep, bash) all succeed, and the manifest covers the files."""
    folder = write_pack(period_report(state), tmp_path / "pack", state)
    assert (folder / "history" / "verify-chain.jsonl").read_bytes() == history_path(state).read_bytes()
    assert len(list((folder / "history" / "entries").glob("*.json"))) == 5
    commands = history_commands(folder)
    assert len(commands) == 5, commands
    for command in commands:
        result = run_in(folder, command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert run_in(folder, commands[0]).stdout.count(": OK") == 5
    assert "history/entries/000005.json: OK" in run_in(folder, "sha256sum -c MANIFEST.sha256").stdout
    assert verify_pack(folder) == []
    allowed = (folder / "allowed_signers").read_text()
    assert 'namespaces="provision-report,provision-results,provision-verify-history"' in allowed


def test_a_non_period_pack_carries_no_history(state, tmp_path):
    folder = write_pack(build_report(state=state), tmp_path / "pack", state)
    assert not (folder / "history").exists() and history_commands(folder) == []


@pytest.mark.parametrize(
    ("tamper", "command", "said"),
    [
        ("edited", 0, "history/entries/000003.json: FAILED"),
        ("deleted", 2, "history/entries/000002.json: does not follow the line before it"),
        ("resigned", 1, "history/entries/000003.json: signature does not verify"),
        ("cut off", 4, ""),
    ],
)
def test_a_history_tampered_on_the_controller_fails_the_stock_check_naming_the_line(tmp_path, tamper, command, said):
    """An intruder on the controller edits, deletes, re-hashes or cuts an entry before the pack is made: the pack is
    still intact as a pack (its manifest holds), but the history's own check fails, at the line."""
    state = SiteState("example", tmp_path / "example")
    for minute in range(0, 100, 20):
        record(state, at(minute), {"NET-2": "pass"}, trigger="watch:net")
    if tamper == "edited":
        edit_line(state, 3, lambda e: e["controls"].update({"NET-2": "pass", "NET-1": "pass"}))
    elif tamper == "deleted":
        delete_line(state, 2)
    elif tamper == "resigned":  # content changed and re-hashed: the hash matches, the signature does not

        def rehash(entry):
            entry["controls"]["NET-1"] = "pass"
            entry["hash"] = entry_hash(entry)

        edit_line(state, 3, rehash)
    else:
        rewrite(state, lines(state)[:-1])
    folder = write_pack(period_report(state), tmp_path / "pack", state)
    assert verify_pack(folder) == [], "the pack itself is as it was written"
    result = run_in(folder, history_commands(folder)[command])
    assert result.returncode != 0, (tamper, result.stdout, result.stderr)
    assert said in result.stdout, (result.stdout, result.stderr)
    others = [i for i, c in enumerate(history_commands(folder)) if run_in(folder, c).returncode != 0]
    assert command in others


def test_a_history_holding_a_secret_known_now_is_refused_not_copied(tmp_path):
    """History entries are signed and cannot be masked: a secret the controller learnt after an entry was written
    (here, a refused user name that later became a database password) stops the pack, naming the file."""
    from provisioner.errors import ProvisionError

    state = SiteState("example", tmp_path / "example")
    secret = "later-a-password-4711"
    refused = [{"host": "prod-app1", "what": "ssh", "user": secret, "time": at(5).isoformat()}]
    record(state, at(0), {"NET-2": "pass"}, trigger="watch:net")
    record(state, at(10), {"NET-2": "pass"}, trigger="watch:net", attempts={"refused": refused})
    state.secrets_dir.mkdir(parents=True)
    (state.secrets_dir / "db_password").write_text(secret + "\n")
    with pytest.raises(ProvisionError, match=r"history/verify-chain.jsonl: the verification history holds a secret"):
        write_pack(period_report(state), tmp_path / "pack", state)
    assert not (tmp_path / "pack").exists(), "nothing written"
