"""`provision validate`: the example passes; every file of the bad corpus fails with its key path, exit 2."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from helpers import EXAMPLE, example_data, run_cli, write_site

from provisioner.errors import SiteError
from provisioner.site.load import load_site

BAD = sorted((Path(__file__).resolve().parents[2] / "sites" / "bad").glob("*.yml"))


def expected_of(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path} has no '# expect:' line"
    return match.group(1).strip()


def test_example_is_valid():
    result = run_cli("validate", "example", "--json")
    assert result.rc == 0, result.stderr
    assert result.json["valid"] is True
    assert result.json["environments"] == ["dev", "test", "prod"]


def test_corpus_is_large_enough():
    assert len(BAD) >= 15


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_site_is_rejected_with_its_key_path(path: Path):
    result = run_cli("validate", str(path))
    assert result.rc == 2, f"exit {result.rc}: {result.stdout}{result.stderr}"
    expected = expected_of(path)
    assert expected in result.stderr, result.stderr
    # every message names the file and a line
    assert re.search(rf"{re.escape(path.name)}:\d+:", result.stderr), result.stderr


def test_errors_point_at_the_right_line(tmp_path: Path):
    data = example_data()
    data["hosts"][3]["address"] = "10.90.99.9"
    site = write_site(tmp_path / "s", data)
    with pytest.raises(SiteError) as caught:
        load_site(site)
    (problem,) = caught.value.problems
    assert problem.path == "hosts[3].address"
    line = site.read_text().splitlines()[problem.line - 1]
    assert "address: 10.90.99.9" in line


def test_json_errors_for_scripts(tmp_path: Path):
    data = example_data()
    data["environments"][0]["segment"]["vlan"] = 0
    site = write_site(tmp_path / "s", data)
    result = run_cli("validate", str(site), "--json")
    assert result.rc == 2
    problems = result.json["problems"]
    assert problems[0]["path"] == "environments[0].segment.vlan"
    assert problems[0]["line"] > 0


def test_waiver_makes_production_grant_valid_until_it_expires(tmp_path: Path):
    data = example_data()
    data["people"][0]["access"] = [{"environment": "prod", "level": "login", "waiver": "W-7"}]
    data["waivers"] = [
        {
            "id": "W-7",
            "control": "ACC-1",
            "person": "alice",
            "environment": "prod",
            "justification": "two-person team: alice is on call for the shop",
            "requester": "alice",
            "approver": "erin",
            "risk": "high",
            "expires": "2030-06-30",
            "compensating": ["four-eyes approval of every production change", "session logging"],
        }
    ]
    site = write_site(tmp_path / "s", data)
    assert load_site(site, today=dt.date(2030, 6, 30)).model.people[0].access[0].waiver == "W-7"
    with pytest.raises(SiteError) as caught:
        load_site(site, today=dt.date(2030, 7, 1))
    assert "expired on 2030-06-30" in str(caught.value)


def test_unknown_site_name_is_bad_input():
    result = run_cli("validate", "no-such-site")
    assert result.rc == 2
    assert "known sites: example" in result.stderr


def test_bad_cli_arguments_exit_2():
    assert run_cli("apply", "example", "--no-such-option").rc == 2
    assert run_cli("frobnicate").rc == 2


def test_example_file_is_unchanged_by_loading():
    before = EXAMPLE.read_bytes()
    load_site(EXAMPLE)
    assert EXAMPLE.read_bytes() == before
