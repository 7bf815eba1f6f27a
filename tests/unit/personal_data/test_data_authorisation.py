"""Refresh authorisations: validated in the site file, checked again by the refresh; DATA-3's deadline logic."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from helpers import example_data, write_site

from provisioner.errors import ExitCode, InputError, RefusedError, SiteError
from provisioner.personal_data.service import check_authorisation, outstanding_refreshes, overdue
from provisioner.site.load import load_site

TODAY = dt.date(2026, 11, 24)


def authorisation(**changes) -> dict:
    base = {
        "id": "CHG-1",
        "from": "prod",
        "to": "test",
        "requester": "alice",
        "approver": "erin",
        "reason": "reproduce the invoice rounding bug",
        "scrub_by": "2026-12-01",
    }
    return {**base, **changes}


def site_with(tmp_path, *auths: dict, **test_data):
    data = copy.deepcopy(example_data())
    data["test_data"] = {"authorisations": list(auths), **test_data}
    return write_site(tmp_path / "s", data)


def problems(tmp_path, *auths) -> dict[str, str]:
    with pytest.raises(SiteError) as caught:
        load_site(site_with(tmp_path, *auths))
    return {p.path: p.message for p in caught.value.problems}


def test_a_valid_authorisation_loads(tmp_path):
    site = load_site(site_with(tmp_path, authorisation()))
    auth = site.model.test_data.authorisation("CHG-1")
    assert auth is not None and auth.approver == "erin" and auth.scrub_by == dt.date(2026, 12, 1)


def test_self_approval_is_invalid_at_the_approver_key(tmp_path):
    found = problems(tmp_path, authorisation(approver="alice"))
    assert "cannot approve their own request" in found["test_data.authorisations[0].approver"]


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"approver": "bob"}, "approver", "neither approver nor admin"),
        ({"requester": "mallory"}, "requester", "unknown person 'mallory'"),
        ({"from": "test"}, "from", "not a production environment"),
        ({"to": "dev"}, "to", "does not hold anonymised data"),
        ({"to": "prod"}, "to", "does not hold anonymised data"),
        ({"reason": "because"}, "reason", "at least 10 characters"),
        ({"scrub_by": "soon"}, "scrub_by", "date"),
    ],
)
def test_bad_authorisations_name_their_key(tmp_path, changes, key, words):
    found = problems(tmp_path, authorisation(**changes))
    assert words in found[f"test_data.authorisations[0].{key}"], found


def test_duplicate_ids_are_invalid(tmp_path):
    found = problems(tmp_path, authorisation(), authorisation())
    assert "declared twice" in found["test_data.authorisations[1].id"]


def test_unknown_rule_is_invalid(tmp_path):
    data = copy.deepcopy(example_data())
    data["test_data"] = {"rules": {"customers": {"email": "scramble", "phone": "fake:voice"}}}
    with pytest.raises(SiteError) as caught:
        load_site(write_site(tmp_path / "s", data))
    found = {p.path: p.message for p in caught.value.problems}
    assert "allowed: hash | null | keep" in found["test_data.rules.customers.email"]
    assert "fake:voice" in found["test_data.rules.customers.phone"]


def _envs(tmp_path, *auths):
    site = load_site(site_with(tmp_path, *auths)).model
    return site, site.environment("prod"), site.environment("test")


def test_refresh_needs_an_authorisation(tmp_path):
    site, prod, test = _envs(tmp_path, authorisation())
    with pytest.raises(RefusedError, match="--authorisation REF") as caught:
        check_authorisation(site, None, prod, test, TODAY)
    assert caught.value.exit_code == ExitCode.REFUSED and "CHG-1" in str(caught.value)
    with pytest.raises(InputError, match="no such entry"):
        check_authorisation(site, "CHG-404", prod, test, TODAY)


def test_refresh_refuses_an_expired_authorisation_or_another_route(tmp_path):
    site, prod, test = _envs(tmp_path, authorisation(scrub_by="2026-11-23"))
    with pytest.raises(RefusedError, match="ran out"):
        check_authorisation(site, "CHG-1", prod, test, TODAY)
    assert check_authorisation(site, "CHG-1", prod, test, dt.date(2026, 11, 23)).id == "CHG-1"
    with pytest.raises(RefusedError, match="covers prod -> test"):
        check_authorisation(site, "CHG-1", prod, site.environment("dev"), dt.date(2026, 11, 1))


def test_overdue_refreshes_are_those_not_scrubbed_by_their_deadline(tmp_path):
    from provisioner.personal_data import records
    from provisioner.workspace.site_state import SiteState

    state = SiteState("s", tmp_path / "state")
    first = records.new_record("refresh", "test", scrub_by="2026-11-20", authorisation={"id": "CHG-1"})
    first["time"] = "2026-11-10T00:00:00+00:00"
    records.write_record(state, first)
    assert [r["id"] for r in overdue(outstanding_refreshes(state, "test"), TODAY)] == [first["id"]]
    assert overdue(outstanding_refreshes(state, "test"), dt.date(2026, 11, 20)) == []
    scrub = records.new_record("scrub", "test")
    scrub["time"] = "2026-11-19T00:00:00+00:00"
    records.write_record(state, scrub)
    assert outstanding_refreshes(state, "test") == []
    second = records.new_record("refresh", "test", scrub_by="2026-11-21")
    second["time"] = "2026-11-20T00:00:00+00:00"
    records.write_record(state, second)
    assert [r["id"] for r in outstanding_refreshes(state, "test")] == [second["id"]]
    assert outstanding_refreshes(state, "dev") == []
