"""The period report (issue 21, items 4 and 5), from histories written by the real `record_run` with the real
evidence key: time with no run is "not verified", never a pass; a fault between two runs is a failure window with
its bounds; a deleted or reordered entry shows and the period cannot be a clean pass; the share of scheduled runs
that ran; the blocked attempts summed by pair and by person."""

from __future__ import annotations

import datetime as dt

import pytest
from history_runs import T0, at, delete_line, edit_line, record, swap_lines
from report_fixtures import example_site

from provisioner.errors import InputError
from provisioner.report import period
from provisioner.report.collect import period_section
from provisioner.site.model import WatchSchedule, WatchSettings
from provisioner.workspace.site_state import SiteState

NV = period.NOT_VERIFIED


def watched(*schedules: tuple[str, str, list[str]], grace: str = "5m"):
    return example_site(
        watch=WatchSettings(
            schedules=[WatchSchedule(name=n, every=e, controls=c) for n, e, c in schedules], grace=grace
        )
    )


def span(minutes_from: float, minutes_to: float) -> period.Period:
    return period.Period(at(minutes_from), at(minutes_to))


def strip(section: dict, control: str) -> list[tuple[str, str, str]]:
    """(start, end, status) of a control's timeline, times as minutes after T0."""
    [found] = [c for c in section["controls"] if c["id"] == control]

    def minutes(text: str) -> str:
        return f"{(dt.datetime.fromisoformat(text) - T0).total_seconds() / 60:g}"

    return [(minutes(s["start"]), minutes(s["end"]), s["status"]) for s in found["segments"]]


@pytest.fixture
def state(tmp_path) -> SiteState:
    return SiteState("example", tmp_path / "example")


SITE = watched(("net", "20m", ["NET-2"]))  # NET-2 verified every 20 minutes, grace 5 minutes: valid for 25


# ---- gaps ---------------------------------------------------------------------------------------------------------
def test_time_without_a_run_is_not_verified_never_pass(state):
    record(state, at(0), {"NET-2": "pass"}, trigger="watch:net")
    record(state, at(120), {"NET-2": "pass"}, trigger="watch:net")  # the watcher stopped for 95 minutes
    section = period_section(SITE, state, span(0, 180))
    assert strip(section, "NET-2") == [
        ("0", "25", "pass"), ("25", "120", NV), ("120", "145", "pass"), ("145", "180", NV),
    ]  # fmt: skip
    [net] = section["controls"]
    assert net["share"][NV] == pytest.approx((95 + 35) / 180, abs=1e-4)
    assert section["verdict"]["status"] == "partly proven", "a gap is never a clean pass"


def test_a_period_before_any_run_is_all_not_verified(state):
    record(state, at(600), {"NET-2": "pass"})
    assert strip(period_section(SITE, state, span(0, 60)), "NET-2") == [("0", "60", NV)]


def test_a_run_before_the_period_counts_only_until_its_validity_ends(state):
    record(state, at(-10), {"NET-2": "fail"})
    assert strip(period_section(SITE, state, span(0, 60)), "NET-2") == [("0", "15", "fail"), ("15", "60", NV)]


def test_without_a_watch_section_only_the_grace_applies(state):
    record(state, at(0), {"NET-2": "pass", "ACC-2": "pass"})
    section = period_section(example_site(), state, span(0, 30))
    assert strip(section, "NET-2") == [("0", "5", "pass"), ("5", "30", NV)]
    assert section["schedules"] == []


def test_a_control_the_run_did_not_cover_is_not_verified_and_skip_is_not_a_pass(state):
    record(state, at(0), {"NET-2": "pass", "ACC-2": "skip"}, trigger="watch:net")
    record(state, at(1), {"ACC-3": "pass"})
    section = period_section(SITE, state, span(0, 20))
    assert strip(section, "ACC-2") == [("0", "20", NV)]
    assert strip(section, "NET-2") == [("0", "20", "pass")], "ACC-3's run did not cover NET-2: it keeps its verdict"


def test_waived_shows_as_waived_not_pass(state):
    record(state, at(0), {"NET-2": "waived"}, trigger="watch:net")
    section = period_section(SITE, state, span(0, 20))
    assert strip(section, "NET-2") == [("0", "20", "waived")] and section["verdict"]["status"] == "accepted risk"


# ---- failure windows ----------------------------------------------------------------------------------------------
def test_a_fault_between_two_runs_is_a_window_with_its_bounds(state):
    for minute, verdict in ((0, "pass"), (20, "pass"), (40, "fail"), (60, "fail"), (80, "pass"), (100, "pass")):
        record(state, at(minute), {"NET-2": verdict}, trigger="watch:net", name=f"run{minute}")
    section = period_section(SITE, state, span(0, 120))
    [window] = section["windows"]
    assert window["last_pass"]["run"] == "run20" and window["start"]["run"] == "run40"
    assert window["end"]["run"] == "run80" and not window["open_at_end"]
    assert window["repair_seconds"] == 40 * 60 and window["repair"] == "40m 00s"
    assert window["at_most_seconds"] == 60 * 60
    assert ("40", "80", "fail") in strip(section, "NET-2")
    assert section["verdict"]["status"] == "at risk"
    q1 = section["questions"][0]
    assert q1["id"] == "Q1" and q1["status"] == "at risk" and "1 failure window" in q1["answer"]


def test_a_window_still_open_at_the_end_of_the_period_says_so(state):
    record(state, at(0), {"NET-2": "pass"}, name="ok")
    record(state, at(20), {"NET-2": "fail"}, name="broke")
    record(state, at(90), {"NET-2": "pass"}, name="fixed-later")
    [window] = period_section(SITE, state, span(0, 60))["windows"]
    assert window["open_at_end"] and window["end"] is None and window["repair_seconds"] is None
    assert window["repaired_after_period"]["run"] == "fixed-later"


def test_a_window_that_began_before_the_period_is_shown_and_says_so(state):
    record(state, at(-30), {"NET-2": "fail"}, name="before")
    record(state, at(10), {"NET-2": "pass"}, name="fixed")
    [window] = period_section(SITE, state, span(0, 60))["windows"]
    assert window["began_before_period"] and window["end"]["run"] == "fixed" and window["last_pass"] is None


def test_windows_closed_before_the_period_are_not_shown(state):
    record(state, at(-60), {"NET-2": "fail"})
    record(state, at(-40), {"NET-2": "pass"})
    assert period_section(SITE, state, span(0, 60))["windows"] == []


# ---- the history check in the report -------------------------------------------------------------------------------
def test_a_deleted_entry_shows_in_the_report_and_the_period_is_not_clean(state):
    for minute in range(0, 120, 20):
        record(state, at(minute), {"NET-2": "pass"}, trigger="watch:net")
    assert period_section(SITE, state, span(0, 120))["verdict"]["status"] == "proven", "clean before the deletion"
    delete_line(state, 3)
    section = period_section(SITE, state, span(0, 120))
    assert not section["history"]["ok"]
    assert any(p["line"] == 3 and p["kind"] == "deleted" for p in section["history"]["problems"])
    assert section["verdict"]["status"] == "history broken"
    assert all(q["status"] != "proven" for q in section["questions"])
    assert ("45", "60", NV) in strip(section, "NET-2"), "the deleted run's time is a gap"


def test_a_reordered_entry_shows_in_the_report(state):
    for minute in range(0, 100, 20):
        record(state, at(minute), {"NET-2": "pass"})
    swap_lines(state, 2, 4)
    section = period_section(SITE, state, span(0, 100))
    assert {2, 4} <= {p["line"] for p in section["history"]["problems"] if p["kind"] == "reordered"}
    assert not [p for p in section["history"]["problems"] if p["kind"] in ("deleted", "edited", "signature")]
    assert section["verdict"]["status"] == "history broken"


def test_an_edited_entry_is_left_out_of_the_timeline(state):
    record(state, at(0), {"NET-2": "pass"})
    record(state, at(20), {"NET-2": "fail"})
    record(state, at(40), {"NET-2": "pass"})
    edit_line(state, 2, lambda e: e["controls"].update({"NET-2": "pass"}))  # hiding the failure
    section = period_section(SITE, state, span(0, 60))
    assert section["history"]["left_out"][0]["line"] == 2
    assert strip(section, "NET-2") == [("0", "25", "pass"), ("25", "40", NV), ("40", "60", "pass")]


# ---- scheduled runs -----------------------------------------------------------------------------------------------
def test_the_share_of_scheduled_runs_that_ran(state):
    site = watched(("net", "20m", ["NET-2"]), ("data", "1h", ["DATA"]), grace="2m")
    for minute in (1, 21, 81, 101):  # the runs of slots 3 and 4 (40-80) missing
        record(state, at(minute), {"NET-2": "pass"}, trigger="watch:net")
    record(state, at(45), {"NET-2": "pass"})  # by hand: not a scheduled run
    record(state, at(21.5), {"NET-2": "pass"}, trigger="watch:net")  # twice in one slot fills one slot
    section = period_section(site, state, span(0, 120))
    net, data = section["schedules"]
    assert (net["name"], net["expected"], net["ran"], net["runs"]) == ("net", 6, 4, 5)
    assert net["share"] == pytest.approx(4 / 6, abs=1e-4) and net["first_missed"] == "2026-03-01T00:40:00+00:00"
    assert (data["expected"], data["ran"], data["share"]) == (2, 0, 0)


def test_a_run_late_within_the_grace_still_counts_for_its_slot(state):
    site = watched(("net", "20m", ["NET-2"]), grace="5m")
    for minute in (3, 24, 44):  # the last two finish just after their slot ended, within the grace
        record(state, at(minute), {"NET-2": "pass"}, trigger="watch:net")
    [net] = period_section(site, state, span(0, 60))["schedules"]
    assert (net["expected"], net["ran"]) == (3, 3)


# ---- blocked attempts ---------------------------------------------------------------------------------------------
def attempts(pairs: dict[str, int], people: dict[str, dict[str, int]], gateway_read=True, logs_read=True) -> dict:
    return {
        "since": "x", "until": "y",
        "gateway": {"read": gateway_read, "why": "" if gateway_read else "gateway unreachable", "by_pair": pairs},
        "refused": [{"time": "t", "host": "prod-app1", "what": "ssh", "user": "bob", "person": "bob", "source": None,
                     "from_env": "dev", "line": "Failed publickey for bob"}] if people else [],
        "by_person": people, "logs": {"read": logs_read, "why": "" if logs_read else "no logs shipped"},
    }  # fmt: skip


def test_blocked_attempts_are_summed_by_pair_and_person_and_unread_runs_counted(state):
    record(state, at(0), {"NET-2": "pass"}, attempts=attempts({"dev->prod": 3}, {"bob": {"ssh": 2, "sudo": 0}}))
    people = {"bob": {"ssh": 1, "sudo": 1}, "?": {"ssh": 5}}
    record(state, at(10), {"NET-2": "pass"}, attempts=attempts({"dev->prod": 4, "test->prod": 1}, people))
    record(state, at(20), {"NET-2": "pass"}, attempts=attempts({"dev->prod": 100}, {}, gateway_read=False))
    record(state, at(30), {"NET-2": "pass"})  # no attempts collected
    record(state, at(-10), {"NET-2": "pass"}, attempts=attempts({"dev->prod": 50}, {}))  # before the period
    result = period_section(SITE, state, span(0, 60))["attempts"]
    assert result["by_pair"] == {"dev->prod": 7, "test->prod": 1}, "unread counters are not summed"
    assert result["by_person"] == {"?": {"ssh": 5, "sudo": 0}, "bob": {"ssh": 3, "sudo": 1}}
    assert result["runs"] == 4 and result["runs_unread"] == 2
    assert {u["what"] for u in result["unread"]} == {"gateway", "attempts"}
    assert len(result["refused"]) == 2


# ---- the period's dates -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        ("2026-13-01", "2027-01-01", "--from 2026-13-01: not a date"),
        ("2026-01-01", "yesterday", "--to yesterday: not a date"),
        ("2026-02-01", "2026-01-01", "--from 2026-02-01T00:00:00+00:00 is not before --to 2026-01-01T00:00:00+00:00"),
        ("2026-01-01", "2026-01-01T00:00:00Z", "is not before --to"),
    ],
)
def test_bad_dates_are_refused(start, end, said):
    with pytest.raises(InputError) as refused:
        period.parse_period(start, end)
    assert said in str(refused.value)


def test_dates_are_utc_and_offsets_are_converted():
    span_ = period.parse_period("2026-01-01", "2026-01-02T01:00:00+02:00")
    assert span_.start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert span_.end == dt.datetime(2026, 1, 1, 23, tzinfo=dt.UTC)
    assert period.parse_period("2026-01-01T10:00:00", "2026-01-01T11:00").seconds == 3600


def test_controls_the_report_checks_itself_have_no_timeline_and_do_not_spoil_the_verdict(state):
    site = watched(("all", "20m", []))  # every control of the catalogue
    from provisioner.site.watch_schedules import catalogue_ids

    ids = [cid for cid in catalogue_ids() if cid not in ("NET-4", "DOC-1")]  # every control a verify run checks
    record(state, at(0), dict.fromkeys(ids, "pass"), trigger="watch:all")
    section = period_section(site, state, span(0, 20))
    shown = {c["id"] for c in section["controls"]}
    assert "NET-4" not in shown and "DOC-1" not in shown and section["checked_by_report"] == ["NET-4", "DOC-1"]
    assert shown == set(ids) and section["verdict"]["status"] == "proven", section["verdict"]
