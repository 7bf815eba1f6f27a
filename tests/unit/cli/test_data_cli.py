"""`provision data`: bad input names what is wrong and what is allowed, exits 2 (policy refusals 3), touches nothing."""

from __future__ import annotations

import copy

import pytest
from helpers import example_data, run_cli, write_site

AUTH = {
    "id": "CHG-7",
    "from": "prod",
    "to": "test",
    "requester": "alice",
    "approver": "erin",
    "reason": "reproduce the invoice rounding bug",
    "scrub_by": "2099-01-31",
}


@pytest.fixture
def site(tmp_path):
    data = copy.deepcopy(example_data())
    data["test_data"] = {"authorisations": [AUTH]}
    return write_site(tmp_path / "inventories" / "example", data)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def cli(state, *args):
    return run_cli(*args, env={"PROVISION_STATE_DIR": str(state)})


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["seed", "--env", "prod"], 2, "--env prod: production holds live data and is never seeded; allowed: dev"),
        (["seed", "--env", "qa"], 2, "--env qa: unknown environment; allowed: dev, test, prod"),
        (["scan", "--env", "prod"], 2, "the scan looks for live data outside production; allowed: dev, test"),
        (["scrub", "--env", "prod"], 2, "allowed: dev, test"),
        (["refresh", "--from", "test", "--to", "test", "--authorisation", "CHG-7"], 2, "--from test: only production"),
        (["refresh", "--from", "prod", "--to", "dev", "--authorisation", "CHG-7"], 2, "its data rule is 'dummy'"),
        (["refresh", "--from", "prod", "--to", "test"], 3, "needs an authorisation: --authorisation REF"),
        (["refresh", "--from", "prod", "--to", "test", "--authorisation", "CHG-8"], 2, "declared: CHG-7"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_touched(site, state, args, code, words):
    result = cli(state, "data", args[0], str(site), *args[1:])
    assert result.rc == code, result.stdout + result.stderr
    assert words in " ".join(result.stderr.split()), result.stderr
    assert not state.exists(), "nothing was touched: not even the state folder"


def test_json_errors_for_scripts(site, state):
    result = cli(state, "data", "refresh", str(site), "--from", "prod", "--to", "test", "--json")
    assert result.rc == 3 and result.json["exit_code"] == 3 and "--authorisation" in result.json["error"]


def test_scan_needs_an_environment(site, state):
    result = cli(state, "data", "scan", str(site))
    assert result.rc == 2 and "--env" in result.stderr


def test_a_self_approved_authorisation_stops_the_refresh_at_the_site_file(tmp_path, state):
    data = copy.deepcopy(example_data())
    data["test_data"] = {"authorisations": [{**AUTH, "approver": "alice"}]}
    site = write_site(tmp_path / "selfie", data)
    result = cli(state, "data", "refresh", str(site), "--from", "prod", "--to", "test", "--authorisation", "CHG-7")
    assert result.rc == 2
    assert "site.yml:" in result.stderr and "test_data.authorisations[0].approver" in result.stderr
    assert "cannot approve their own request" in result.stderr
    assert not state.exists()


def test_an_unapplied_site_is_an_operational_error_not_a_crash(site, state):
    result = cli(state, "data", "seed", str(site), "--env", "dev")
    assert result.rc == 1 and "has not been applied here yet" in result.stderr and "Traceback" not in result.stderr
