"""Every input error of the command line exits 2, says what is allowed, and writes nothing (issue 16).

Each bad invocation runs the real `provision` app in this process (a subprocess per case would take a minute)
against throwaway sites; the whole throwaway folder (site files, state, artifacts) is compared byte for byte,
with modification times, before and after. Only cases that need no lab: input is checked before a lab is
looked at. One case runs through `python -m provisioner` to show the in-process runs are the real thing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from helpers import ROOT, example_data, release_artifact, run_cli, write_site
from typer.testing import CliRunner

from provisioner.backends.libvirt import guest_image
from provisioner.backends.lxc import base_image
from provisioner.cli import app

DEMO_KEYS = ROOT / "inventories" / "example" / "demo-keys"
Snapshot = dict[str, tuple[str, int, str]]


@dataclass(frozen=True)
class World:
    root: Path
    env: dict[str, str]
    paths: dict[str, str]  # what the cases' {placeholders} stand for


def _site(root: Path, name: str) -> Path:
    data = copy.deepcopy(example_data())
    data["site"] = name
    data["deploy"]["key_file"] = str(DEMO_KEYS / "deploy")
    return write_site(root / "inventories" / name, data)


def _waiving_production(root: Path) -> Path:
    """A site whose NET-2 waiver reaches into production: refused by every command that loads it."""
    data = copy.deepcopy(example_data())
    data["site"] = "waiving"
    data["waivers"] = [
        {"id": "W-9", "control": "NET-2", "source": "test", "destination": "prod", "requester": "dave",
         "approver": "erin", "justification": "the shop's test feed reads production", "risk": "high",
         "expires": "2099-12-31"}
    ]  # fmt: skip
    return write_site(root / "inventories" / "waiving", data)


def _files(root: Path) -> dict[str, Path]:
    files = root / "files"
    (files / "folder.tar.gz").mkdir(parents=True)
    (files / "empty").mkdir()
    (files / "full").mkdir()
    (files / "full" / "kept.txt").write_text("an earlier pack lives here\n")
    (files / "text.txt").write_text("not a key, not an archive\n")
    no_version = files / "no-version.tar.gz"
    with tarfile.open(no_version, "w:gz") as tar:
        tar.add(files / "text.txt", arcname="index.html")
    return {
        "folder": files / "folder.tar.gz",
        "empty": files / "empty",
        "full": files / "full",
        "text": files / "text.txt",
        "noversion": no_version,
        "missing": files / "missing.tar.gz",
        "artifact": release_artifact(files, "1.0.0"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Two sites: `inputs`, whose ledger holds r1 by alice, and `fresh`, which has no state at all."""
    root = tmp_path_factory.mktemp("input-errors")
    env = {
        "PROVISION_STATE_DIR": str(root / "state"),
        # were an empty SITE ever taken as "the only site" again, this names no site rather than the example
        "PROVISION_SITE": str(root / "no-default-site"),
        "COLUMNS": "250",
        # `provision watch install` writes its scheduler's files under this root, never /etc, in these tests
        "PROVISION_SYSTEM_ROOT": str(root / "system"),
    }
    paths = {name: str(path) for name, path in _files(root).items()}
    paths |= {"site": str(_site(root, "inputs")), "fresh": str(_site(root, "fresh"))}
    paths["waiving"] = str(_waiving_production(root))
    created = invoke(env, "release", "create", "--artifact", paths["artifact"], "--as", "alice",
                     "--sign-key", str(DEMO_KEYS / "alice"),
                     "--site", paths["site"])  # fmt: skip
    assert created.exit_code == 0, created.output
    return World(root, env, paths)


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner(env=env).invoke(app, list(args), catch_exceptions=True)


def snapshot(root: Path) -> Snapshot:
    """Every file and folder under root: kind, modification time, and content digest of files."""
    found: Snapshot = {}
    for path in sorted([root, *root.rglob("*")]):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = ("dir" if path.is_dir() else "file", stat.st_mtime_ns, digest)
    return found


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


CASES: list[tuple[str, str]] = [
    # sites
    ("validate nosuch", "no such site file; known sites: example"),
    ("plan nosuch", "no such site file"),
    ("status nosuch", "no such site file"),
    ("apply nosuch", "no such site file"),
    ("destroy nosuch", "no such site file"),
    ("verify nosuch", "no such site file"),
    ("report nosuch", "no such site file"),
    ("doctor nosuch", "no such site file"),
    ("data seed nosuch --env dev", "no such site file"),
    ("release log --site nosuch", "no such site file"),
    ("validate {text}", "this file holds no mapping of keys"),
    ("validate ''", "SITE '': empty; name a site under inventories/"),
    ("apply ''", "SITE '': empty"),
    ("destroy ''", "SITE '': empty"),
    ("release log --site ''", "SITE '': empty"),
    # a waiver that could hide a production result of NET-2 (issue 18): no command takes the site
    ("validate {waiving}", "waivers[0].destination: 'prod' is a production environment; NET-2 is never waived in"),
    ("verify {waiving}", "NET-2 is never waived in production"),
    ("report {waiving}", "NET-2 is never waived in production"),
    ("waiver approve W-9 --as erin --site {waiving}", "allowed: an environment outside production (dev, test)"),
    # environments
    ("destroy {site} --env qa", "--env qa: unknown environment; allowed: dev, test, prod"),
    ("destroy {site} --env dev --env ''", "--env '': unknown environment; allowed: dev, test, prod"),
    ("data seed {site} --env qa", "--env qa: unknown environment; allowed: dev, test, prod"),
    ("data scrub {site} --env ''", "--env '': unknown environment"),
    ("release deploy r1 --site {site} --env qa", "--env qa: not on the release path; allowed: dev, test, prod"),
    # numbers
    ("data seed {site} --env dev --seed -1", "Invalid value for '--seed'"),
    ("data seed {site} --env dev --customers 0", "Invalid value for '--customers'"),
    ("data scan {site} --env dev --sample-rows 5", "Invalid value for '--sample-rows'"),
    ("verify {site} --workers 0", "Invalid value for '--workers'"),
    ("data refresh {site} --authorisation ''", "--authorisation '': empty; name an entry of test_data"),
    # release ids
    ("release show r9 --site {site}", "release r9 is not in the ledger; known releases: r1"),
    ("release show r1 --site {fresh}", "release r1 is not in the ledger; known releases: none yet"),
    ("release show ../x --site {site}", "release ../x: not a release id; release ids are r1, r2"),
    ("release show 'r1\nx' --site {site}", "release 'r1\\nx': not a release id"),
    ("release show '' --site {site}", "release '': not a release id"),
    ("release approve r9 --as erin --site {site}", "known releases: r1"),
    ("release approve r1 --as erin --site {fresh}", "known releases: none yet"),
    ("release approve ../x --as erin --site {site}", "not a release id"),
    ("release deploy r9 --env dev --site {site}", "known releases: r1"),
    ("release deploy r1 --env dev --site {fresh}", "known releases: none yet"),
    ("release deploy '' --env dev --site {site}", "not a release id"),
    # people
    ("release create --artifact {artifact} --as nobody --site {site}", "--as nobody: not a person of site 'inputs'"),
    ("release approve r1 --as nobody --site {site}", "allowed: alice, bob, carol, dave, erin"),
    ("release approve r1 --as '' --site {site}", "--as '': not a person"),
    ("release deploy r1 --env dev --as nobody --site {site}", "--as nobody: not a person"),
    # files
    ("release create --artifact {missing} --as alice --site {site}", "no such file; a release is a .tar.gz file"),
    ("release create --artifact {folder} --as alice --site {site}", "a folder; a release is a .tar.gz file"),
    ("release create --artifact {text} --as alice --site {site}", "not a .tar.gz archive"),
    ("release create --artifact {noversion} --as alice --site {site}", "has no VERSION file at its top"),
    ("release create --artifact '' --as bob --site {fresh}", "a folder; a release is a .tar.gz file"),
    ("release deploy r1 --env dev --key {missing} --site {site}", "no such file; name the deploy identity's"),
    ("release deploy r1 --env dev --key {empty} --site {site}", "a folder; name the deploy identity's"),
    ("release deploy r1 --env dev --key {text} --site {site}", "text.txt: not an SSH private key"),
    ("release deploy r1 --env dev --key '' --site {site}", "--key '': empty"),
    ("verify {site} --keys {missing}", "no such folder; name the folder of people's private keys"),
    ("verify {site} --keys {text}", "not a folder; name the folder of people's private keys"),
    ("verify {site} --keys ''", "--keys '': empty"),
    ("report {site} --out {full}", "not empty; an evidence pack is written into a new or empty folder"),
    ("report {site} --out {text}", "a file; an evidence pack is written into a new or empty folder"),
    ("report {site} --out ''", "--out '': empty"),
    ("report verify {missing}", "no such folder; name the folder of an evidence pack"),
    ("report verify {text}", "not a folder; name the folder of an evidence pack"),
    ("report verify {empty} --key {missing}", "no such file; an SSH public key"),
    ("report verify {empty} --key {text}", "not an SSH public key"),
    ("policy {site} --out {empty}", "a folder; name the file to write the policy to, in an existing folder"),
    ("policy {site} --out {missing}/policy.md", "no such folder"),
    ("policy {site} --format pdf --out ''", "--out '': empty; name the file to write the policy to"),
    ("policy {site} --format html", "Invalid value for '--format'"),
    ("policy {site} --json", "--json reports where the policy was written: add --out FILE"),
    ("policy nosuch --out {empty}/policy.md", "no such site file"),
    ("policy ''", "SITE '': empty"),
    # expressions, names, and options that do not go together
    ("verify {site} -k '(('", "-k ((: not a -k expression"),
    ("verify {site} -k ''", "-k '': empty"),
    ("verify {site} --controls NET,ACC-99", "--controls ACC-99: no control or family of the catalogue"),
    ("verify {site} --controls ' , '", "--controls: empty"),
    ("watch install {site} --keys {empty}", "the site file declares no watch: section"),
    ("watch install {site} --keys {empty} --scheduler bogus", "Invalid value for '--scheduler'"),
    ("watch status nosuch", "no such site file"),
    ("watch tick nosuch", "no such site file"),
    ("watch tick {site}", "no watcher is installed for site 'inputs'"),
    ("watch tick {site} --for -1", "Invalid value for '--for'"),
    ("image build --package -oAPT::Get::Assume-Yes=1", "not a Debian package name; allowed: lower-case letters"),
    ("image build --backend lxc --package Bad_Name", "--package Bad_Name: not a Debian package name"),
    ("image build --backend libvirt --package htop --package ''", "--package '': not a Debian package name"),
    ("image build --backend bogus", "Invalid value for '--backend'"),
    ("doctor {site} --backend lxc", "name a site or --backend, not both"),
    ("doctor --backend bogus", "Invalid value for '--backend'"),
    ("report {site} extra", "one site expected"),
    ("report verify", "usage: provision report verify DIR"),
    ("report verify {empty} --out {empty}", "`report verify DIR` checks one and takes only --key"),
    ("report {site} --key {text}", "--key goes with `report verify DIR`"),
    ("report {site} --from 2026-01-01 --to 2025-12-31", "--from 2026-01-01T00:00:00+00:00 is not before --to"),
    ("report {site} --from 2026-01-01 --to 2026-01-01", "is not before --to"),
    ("report {site} --from 31.01.2026 --to 2026-03-01", "--from 31.01.2026: not a date; give YYYY-MM-DD"),
    ("report {site} --from 2026-01-01 --to soon", "--to soon: not a date"),
    ("report {site} --to 2026-01-01", "--to needs --from too"),
    ("report verify {empty} --from 2026-01-01", "`report verify DIR` checks one and takes only --key"),
    ("history nosuch", "no such site file"),
    ("release nosuch", "No such command 'nosuch'"),
]


def arguments(template: str, world: World) -> list[str]:
    """The case's words, split as a shell would ('' is an empty word), with the world's paths filled in."""
    return [word.format(**world.paths) for word in shlex.split(template)]


@pytest.fixture
def no_image_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a bad --package ever let through, fail at once instead of building an image as root."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("an image build started despite bad input")

    monkeypatch.setattr(base_image, "ensure_base", refuse)
    monkeypatch.setattr(base_image, "lxc_path", refuse)
    monkeypatch.setattr(guest_image, "ensure_built", refuse)


@pytest.mark.parametrize(("template", "phrase"), CASES, ids=[case for case, _ in CASES])
@pytest.mark.usefixtures("no_image_builds")
def test_bad_input_exits_2_says_what_is_allowed_and_writes_nothing(world: World, template: str, phrase: str):
    before = snapshot(world.root)
    result = invoke(world.env, *arguments(template, world))
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and not isinstance(result.exception, Exception), result.exception
    assert phrase in " ".join(stderr.replace("│", " ").split()), stderr
    assert changes(before, snapshot(world.root)) == [], "bad input must write nothing"


def test_the_error_is_json_for_scripts(world: World):
    before = snapshot(world.root)
    result = invoke(world.env, "release", "show", "../x", "--site", world.paths["site"], "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 2 and "not a release id" in payload["error"]
    assert changes(before, snapshot(world.root)) == []


@pytest.mark.parametrize("command", [["log"], ["verify-ledger"], ["show", "r1"]])
def test_reading_the_ledger_of_a_site_with_no_state_creates_no_state(world: World, command: list[str]):
    """Reading evidence never makes a signing key or a state folder (it did: `release log` made both)."""
    before = snapshot(world.root)
    invoke(world.env, "release", *command, "--site", world.paths["fresh"])
    assert changes(before, snapshot(world.root)) == []
    assert not (world.root / "state" / "fresh").exists()


def test_the_real_command_line_agrees(world: World):
    before = snapshot(world.root)
    result = run_cli("release", "approve", "r1", "--as", "nobody", "--site", world.paths["site"], env=world.env)
    assert result.rc == 2 and "--as nobody: not a person of site 'inputs'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert changes(before, snapshot(world.root)) == []


def test_a_refused_step_writes_nothing_either(world: World):
    """Refusals (exit 3) are checked before the ledger's lock is taken, and taking it writes nothing."""
    before = snapshot(world.root)
    result = invoke(world.env, "release", "approve", "r1", "--as", "alice", "--site", world.paths["site"])
    assert result.exit_code == 3 and "cannot approve it" in result.stderr, result.output
    assert changes(before, snapshot(world.root)) == []
