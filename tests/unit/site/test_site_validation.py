"""`provision validate`: the example passes; every file of the bad corpus fails with its file, line, key path
and what is allowed, exit 2.

Each file of tests/sites/bad starts with three comment lines:
    # <the one defect>
    # path: <the key path the message names; (file) for a problem of the whole file>
    # allowed: <a phrase of the message's "allowed: ..." part>
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import EXAMPLE, example_data, run_cli, write_site

from provisioner.errors import SiteError
from provisioner.site.load import load_site

BAD = sorted((Path(__file__).resolve().parents[2] / "sites" / "bad").glob("*.yml"))
WHOLE_FILE = "(file)"

# Where the reported line cannot hold the last key of the path, and why. (Paths ending in a list index and
# problems of the whole file are not line-checked either: there is no key name to look for.)
LINE_HOLDS_NO_KEY = {
    "schema-backend-without-type": "the missing key is reported on the line of the section that lacks it",
    "design-management-vlan-missing": "the missing key is reported on the line of the section that lacks it",
    "design-access-vlan-missing": "the missing key is reported on the line of the section that lacks it",
    "design-access-proxmox-vnet-derived-twice": "the VNet is derived: the file has no vnet key to point at",
    "duty-developer-prod-login-no-waiver": "the missing waiver key is reported on the line of the grant",
    "duty-tester-prod-login-no-waiver": "the missing waiver key is reported on the line of the grant",
}
# By file name prefix: a missing key is reported on the line of the mapping that lacks it; a YAML error on the
# line where the text broke, under the key it broke in.
LINE_HOLDS_NO_KEY_PREFIXES = ("schema-missing-", "yaml-syntax-", "yaml-key-")


@dataclass(frozen=True)
class Expected:
    description: str
    path: str
    allowed: str


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8", errors="replace")


def expected_of(path: Path) -> Expected:
    head = _text(path).split("\n")[:3]
    assert len(head) == 3, f"{path.name}: no header"
    description, key, allowed = head
    assert re.fullmatch(r"# \S.*", description), f"{path.name}: line 1 is not '# <the defect>'"
    assert key.startswith("# path: "), f"{path.name}: line 2 is not '# path: <key path>'"
    assert allowed.startswith("# allowed: "), f"{path.name}: line 3 is not '# allowed: <phrase>'"
    return Expected(description[2:], key.removeprefix("# path: ").strip(), allowed.removeprefix("# allowed: ").strip())


def _located(stderr: str, name: str, key: str) -> list[tuple[int, str]]:
    """(line, message) of each stderr line of the form 'name:line: key: message'."""
    where = re.escape(name) + r":(\d+): " + ("" if key == WHOLE_FILE else re.escape(key) + ": ")
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(where + r"(.*)", stderr)]


def _says_allowed(message: str, phrase: str) -> bool:
    """The message has an 'allowed...:' part and the phrase is in it."""
    found = re.search(r"\ballowed[\w ]*: ", message)
    return found is not None and phrase in message[found.end() :]


def _last_key(key: str) -> str | None:
    """The last key name of a path, or None where it ends in a list index or names the whole file."""
    if key == WHOLE_FILE or key.endswith("]"):
        return None
    return key.rsplit(".", 1)[-1]


def test_example_is_valid():
    result = run_cli("validate", "example", "--json")
    assert result.rc == 0, result.stderr
    assert result.json["valid"] is True
    assert result.json["environments"] == ["dev", "test", "prod"]


def test_corpus_is_large_enough():
    assert len(BAD) >= 100


def test_corpus_headers_are_well_formed():
    for path in BAD:
        expected = expected_of(path)
        assert expected.path and expected.allowed, path.name
    assert set(LINE_HOLDS_NO_KEY) <= {p.stem for p in BAD}, "an exception names a file that is not in the corpus"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_site_is_rejected_with_its_key_path(path: Path):
    """In-process, for speed: the lines `provision validate` prints are the SiteError's own (see
    test_the_command_line_prints_the_same_refusals for the command itself)."""
    expected = expected_of(path)
    with pytest.raises(SiteError) as caught:
        load_site(path)
    stderr = str(caught.value)
    located = _located(stderr, path.name, expected.path)
    assert located, f"no '{path.name}:<line>: {expected.path}:' in:\n{stderr}"
    matching = [(line, message) for line, message in located if _says_allowed(message, expected.allowed)]
    assert matching, f"no 'allowed: ...{expected.allowed}...' on the line naming {expected.path}:\n{stderr}"
    key = _last_key(expected.path)
    if key is None or path.stem in LINE_HOLDS_NO_KEY or path.stem.startswith(LINE_HOLDS_NO_KEY_PREFIXES):
        return
    lines = _text(path).split("\n")
    for line, _ in matching:
        assert 1 <= line <= len(lines), f"line {line} is past the end of {path.name}"
        assert key in lines[line - 1], f"{path.name}:{line} is {lines[line - 1]!r}, not the key '{key}'"


SAMPLE = [p for p in BAD if p.stem.split("-")[1] in ("utf16", "alias", "syntax", "developer", "tag")][:12]


@pytest.mark.parametrize("path", SAMPLE, ids=[p.stem for p in SAMPLE])
def test_the_command_line_prints_the_same_refusals(path: Path):
    with pytest.raises(SiteError) as caught:
        load_site(path)
    result = run_cli("validate", str(path))
    assert result.rc == 2, f"exit {result.rc}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    for problem in caught.value.problems:
        assert problem.message in " ".join(result.stderr.split()), result.stderr


def test_oversized_file_is_refused_before_parsing(tmp_path: Path):
    site = tmp_path / "huge.yml"
    padding = "# " + "x" * 1021 + "\n"  # 1 KiB of comment per line
    site.write_text(EXAMPLE.read_text() + padding * 1025)
    assert site.stat().st_size > 1024 * 1024
    result = run_cli("validate", str(site))
    assert result.rc == 2, f"exit {result.rc}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert re.search(r"huge\.yml(:\d+)?: the file is [\d,]+ bytes; allowed: at most 1,048,576 bytes", result.stderr), (
        result.stderr
    )


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


def test_merge_keys_work_as_yaml_defines_them(tmp_path: Path):
    """`<<: *name` merges a mapping (keys given beside it win); a merge of anything else is refused."""
    text = (
        EXAMPLE.read_text()
        .replace("  - name: dev\n    tier: development\n", "  - &dev\n    name: dev\n    tier: development\n", 1)
        .replace("  - name: test\n    tier: test\n", "  - <<: *dev\n    name: test\n    tier: test\n", 1)
    )
    site = tmp_path / "merged" / "site.yml"
    site.parent.mkdir()
    site.write_text(text)
    model = load_site(site).model
    assert [e.name for e in model.environments] == ["dev", "test", "prod"]
    assert model.environment("test").tier == "test" and model.environment("test").colour == "yellow"
