"""The pinned Ansible collections: collections/requirements.yml, the installer's pins, what this virtualenv holds and
what the roles call are one set; the installer takes only the pinned collections out of the bundle's wheel, refuses
another version, and downloads nothing when they are installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from provisioner.controller import collection_pins
from provisioner.controller.collection_pins import PINNED, Collection, CollectionError, ensure, installed_version

FQCN = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+$")
# a filter or a lookup called by its full name inside a template expression
IN_EXPRESSION = re.compile(r"(?:\|\s*|(?:lookup|query)\(\s*['\"])([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+")


def _pins() -> set[tuple[str, str]]:
    return {(c.fqcn, c.version) for c in PINNED}


def test_requirements_file_lists_exactly_the_installers_pins():
    requirements = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())
    listed = {(entry["name"], entry["version"]) for entry in requirements["collections"]}
    assert listed == _pins()
    for entry in requirements["collections"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), f"not an exact pin: {entry}"
    assert set(requirements) == {"collections"}, "roles or other sources are not installed by the pin installer"


def test_this_virtualenv_holds_the_pinned_collections_and_no_other():
    root = collection_pins.collections_root()
    assert root.is_relative_to(Path(sys.prefix)), "the collections live in this virtualenv"
    for collection in PINNED:
        assert installed_version(root, collection) == collection.version, f"{collection} (run `make venv`)"
    installed = {
        f"{namespace.name}.{name.name}"
        for namespace in root.iterdir()
        if namespace.is_dir() and not namespace.name.startswith((".", "_"))
        for name in namespace.iterdir()
        if name.is_dir() and not name.name.startswith((".", "_"))
    }
    assert installed == {c.fqcn for c in PINNED}


def _collections_called(paths: list[Path]) -> dict[str, set[str]]:
    """Collection -> files, for every module, filter or lookup called by its full name (ansible.builtin included)."""
    found: dict[str, set[str]] = {}

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and (match := FQCN.match(key)):
                    found.setdefault(f"{match[1]}.{match[2]}", set()).add(where)
                walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)
        elif isinstance(node, str):
            for match in IN_EXPRESSION.finditer(node):
                found.setdefault(f"{match[1]}.{match[2]}", set()).add(where)

    for path in paths:
        walk(yaml.safe_load(path.read_text()), str(path.relative_to(ROOT)))
    return found


def test_the_roles_and_playbooks_call_exactly_the_pinned_collections():
    files = sorted(
        [*ROOT.glob("roles/*/*/*.yml"), *ROOT.glob("roles/*/molecule/*/*.yml"), *ROOT.glob("playbooks/*.yml")]
    )
    called = _collections_called(files)
    # the scan sees what it must: builtin modules in tasks, a builtin filter in a template expression
    assert "roles/postgres/tasks/config.yml" in called["ansible.builtin"]
    assert "playbooks/site.yml" in called["ansible.builtin"]
    assert {"roles/postgres/tasks/roles.yml", "roles/postgres/tasks/database.yml"} <= called["community.postgresql"]
    assert "roles/env_gateway/tasks/forwarding.yml" in called["ansible.posix"]
    # provisioner.separation is this repository itself (galaxy.yml: its roles and its secret lookup)
    assert "playbooks/site.yml" in called["provisioner.separation"]
    assert set(called) - {"ansible.builtin", "provisioner.separation"} == {c.fqcn for c in PINNED}, called


def _bundle(folder: Path, versions: dict[str, str], extra: dict[str, str] | None = None) -> Path:
    """A wheel laid out as the `ansible` package's: ansible_collections/<namespace>/<name>/ with a MANIFEST.json."""
    wheel = folder / "ansible-12.3.0-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as bundle:
        for fqcn, version in versions.items():
            namespace, name = fqcn.split(".")
            info = {"collection_info": {"namespace": namespace, "name": name, "version": version}}
            bundle.writestr(f"ansible_collections/{namespace}/{name}/MANIFEST.json", json.dumps(info))
            bundle.writestr(f"ansible_collections/{namespace}/{name}/plugins/modules/{name}_thing.py", "# module\n")
        bundle.writestr("ansible_collections/community/general/MANIFEST.json", "{}")  # not pinned: never extracted
        bundle.writestr("ansible_community.py", "")
        for name, text in (extra or {}).items():
            bundle.writestr(name, text)
    return wheel


class Downloads:
    """Stands in for `pip download`: copies a prepared wheel into the folder it is given, and counts the calls."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.calls = 0

    def __call__(self, folder: Path) -> Path:
        self.calls += 1
        target = folder / self.wheel.name
        target.write_bytes(self.wheel.read_bytes())
        return target


PINS = (Collection("community", "postgresql", "4.2.0"), Collection("ansible", "posix", "2.1.0"))
AS_PINNED = {"community.postgresql": "4.2.0", "ansible.posix": "2.1.0"}


def test_only_the_pinned_collections_are_extracted_and_a_second_run_downloads_nothing(tmp_path):
    root = tmp_path / "site-packages" / "ansible_collections"
    download = Downloads(_bundle(tmp_path / "pypi", AS_PINNED))
    assert ensure(root, PINS, download) == list(PINS)
    assert download.calls == 1
    assert (root / "community" / "postgresql" / "plugins" / "modules" / "postgresql_thing.py").exists()
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("*/*")) == ["ansible/posix", "community/postgresql"]
    assert not list(root.rglob("*.partial"))

    assert ensure(root, PINS, download) == []
    assert download.calls == 1, "installed as pinned: nothing is downloaded"


def test_a_collection_at_another_version_is_replaced_and_the_others_left_alone(tmp_path):
    root = tmp_path / "ansible_collections"
    download = Downloads(_bundle(tmp_path / "pypi", AS_PINNED))
    ensure(root, PINS, download)
    kept = root / "ansible" / "posix" / "local-marker"
    kept.write_text("untouched")
    manifest = root / "community" / "postgresql" / "MANIFEST.json"
    manifest.write_text(json.dumps({"collection_info": {"version": "3.0.0"}}))
    (root / "community" / "postgresql" / "stale.py").write_text("")

    assert ensure(root, PINS, download) == [PINS[0]]
    assert installed_version(root, PINS[0]) == "4.2.0"
    assert not (root / "community" / "postgresql" / "stale.py").exists(), "the old version's files are gone"
    assert kept.read_text() == "untouched"


def test_a_wheel_with_another_version_is_refused_and_the_installed_one_kept(tmp_path):
    root = tmp_path / "ansible_collections"
    ensure(root, PINS, Downloads(_bundle(tmp_path / "good", AS_PINNED)))
    (root / "community" / "postgresql" / "MANIFEST.json").write_text("{}")  # damaged: must be reinstalled
    wrong = Downloads(_bundle(tmp_path / "bad", {"community.postgresql": "4.1.0", "ansible.posix": "2.1.0"}))
    with pytest.raises(CollectionError, match=r"holds community\.postgresql 4\.1\.0, pinned 4\.2\.0"):
        ensure(root, PINS, wrong)
    assert (root / "community" / "postgresql" / "MANIFEST.json").read_text() == "{}", "left as it was"
    assert not list(root.rglob("*.partial"))


def test_a_wheel_without_a_pinned_collection_is_refused(tmp_path):
    download = Downloads(_bundle(tmp_path / "pypi", {"ansible.posix": "2.1.0"}))
    with pytest.raises(CollectionError, match=r"holds no community\.postgresql"):
        ensure(tmp_path / "ansible_collections", PINS, download)


def test_an_entry_leaving_the_collection_folder_is_refused(tmp_path):
    root = tmp_path / "site" / "ansible_collections"
    evil = {"ansible_collections/community/postgresql/../../../escaped.py": "x = 1\n"}
    download = Downloads(_bundle(tmp_path / "pypi", AS_PINNED, evil))
    with pytest.raises(CollectionError, match="refusing the entry"):
        ensure(root, PINS, download)
    assert not (tmp_path / "site" / "escaped.py").exists()
    assert not (root / "community" / "postgresql").exists() and not list(root.rglob("*.partial"))


def test_the_makefile_venv_target_runs_the_installer_and_it_finds_everything_installed():
    makefile = (ROOT / "Makefile").read_text()
    venv_rule = re.search(r"^venv:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert venv_rule and "-m provisioner.controller.collection_pins" in venv_rule[1]
    result = subprocess.run(
        [sys.executable, "-m", "provisioner.controller.collection_pins"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "already installed as pinned: community.postgresql 4.2.0, ansible.posix 2.1.0" in result.stdout
