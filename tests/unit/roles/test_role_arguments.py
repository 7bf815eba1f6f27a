"""Role variables: meta/argument_specs.yml and defaults/main.yml agree, and a required variable really is required.

A required variable has no default in defaults/main.yml: with one (even ""), Ansible's argument validation
would always find it set and `required: true` would never fire. Every default is declared in the spec. Every
play of the project that applies a role (playbooks/, the Molecule converge playbooks) passes the role's
required variables, and running a role without one stops at argument validation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
ROLES = sorted(p.parents[1] for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
PLAYBOOKS = sorted(ROOT.glob("playbooks/*.yml")) + sorted(ROOT.glob("roles/*/molecule/*/converge.yml"))
ROLE_ACTIONS = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")


def entry_points(role_dir: Path) -> dict:
    return yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def role_defaults(role_dir: Path) -> dict:
    return yaml.safe_load((role_dir / "defaults" / "main.yml").read_text()) or {}


def required_options(role_dir: Path, entry_point: str = "main") -> list[str]:
    options = entry_points(role_dir)[entry_point].get("options") or {}
    return [name for name, option in options.items() if option.get("required")]


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name for p in paths]


def test_roles_found():
    assert len(ROLES) >= 7
    assert any(required_options(r) for r in ROLES)


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_required_variables_have_no_default(role_dir: Path):
    defaults = role_defaults(role_dir)
    for entry_point, spec in entry_points(role_dir).items():
        for name, option in (spec.get("options") or {}).items():
            if option.get("required"):
                assert name not in defaults, (
                    f"{role_dir.name}: {name} is required by the '{entry_point}' spec but has a default in "
                    "defaults/main.yml, so argument validation can never find it missing"
                )
                assert "default" not in option, f"{role_dir.name}: required {name} has a default in the spec"


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_every_default_is_declared_in_the_spec(role_dir: Path):
    options = entry_points(role_dir)["main"].get("options") or {}
    undeclared = sorted(set(role_defaults(role_dir)) - set(options))
    assert not undeclared, (
        f"{role_dir.name}: defaults/main.yml sets {undeclared}, not declared in meta/argument_specs.yml"
    )


def _templated(value) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    return False


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_spec_defaults_are_the_role_defaults(role_dir: Path):
    """The README shows the spec's default; it must be the value the role really starts from.

    A default computed from other variables may stay out of the spec (its description says what it is):
    Ansible templates the spec itself when it validates, so such a default would be evaluated there too.
    """
    options = entry_points(role_dir)["main"].get("options") or {}
    defaults = role_defaults(role_dir)
    for name, value in defaults.items():
        if name not in options:
            continue
        if "default" in options[name]:
            assert options[name]["default"] == value, f"{role_dir.name}: {name}: spec and defaults/main.yml differ"
        else:
            assert _templated(value), f"{role_dir.name}: {name} has a default but the spec shows none"


COLLECTION = "provisioner.separation."  # the playbooks name this repository's roles by their collection (galaxy.yml)


def _role_entries(playbook: Path):
    """(play, role name, role vars) for every role a playbook applies, by `roles:` or include/import_role; the
    name without the collection's prefix, which is checked apart."""
    for play, name, role_vars in _named_role_entries(playbook):
        yield play, name.removeprefix(COLLECTION), role_vars


def _named_role_entries(playbook: Path):
    for play in yaml.safe_load(playbook.read_text()) or []:
        for entry in play.get("roles") or []:
            if isinstance(entry, str):
                yield play, entry, {}
            else:
                params = {k: v for k, v in entry.items() if k not in ("role", "name", "vars", "tags", "when")}
                yield play, entry.get("role") or entry.get("name"), {**params, **(entry.get("vars") or {})}
        for section in ("pre_tasks", "tasks", "post_tasks"):
            for task in play.get(section) or []:
                for action in ROLE_ACTIONS:
                    if action in task:
                        yield play, task[action]["name"], task.get("vars") or {}


def test_the_playbooks_name_each_role_by_its_collection():
    """FQCN role names: the plays run the collection provisioner.separation, found next to the playbooks
    (playbooks/collections) by plain ansible-playbook, ansible-runner and AWX alike."""
    named = [name for _, name, _ in _named_role_entries(ROOT / "playbooks" / "site.yml")]
    assert len(named) == 7 and all(name.startswith(COLLECTION) for name in named), named


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=ids(PLAYBOOKS))
def test_every_play_passes_the_required_variables(playbook: Path):
    for play, role, role_vars in _role_entries(playbook):
        role_dir = ROOT / "roles" / role
        assert role_dir.is_dir(), f"{playbook}: unknown role {role}"
        given = {**(play.get("vars") or {}), **role_vars}
        missing = [name for name in required_options(role_dir) if name not in given]
        assert not missing, f"{playbook.relative_to(ROOT)}: role {role} is applied without {missing}"


def _validate_only(tmp_path: Path, role: str, role_vars: dict) -> subprocess.CompletedProcess:
    """Run only the role's argument validation on localhost: every other task is left out by tags, in check mode."""
    playbook = tmp_path / "play.yml"
    play = {
        "name": "Argument validation only",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "roles": [{"role": role, "vars": role_vars}],
    }
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    env = {
        "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    command = [str(BIN / "ansible-playbook"), "-i", "localhost,", "--check", "--tags", "argument-validation-only"]
    return subprocess.run([*command, str(playbook)], env=env, capture_output=True, text=True, timeout=120)


ROLES_WITH_REQUIRED = [r for r in ROLES if required_options(r)]
EXAMPLE_VALUES = {"str": "x", "int": 1, "bool": True, "list": [], "dict": {}, "path": "/x"}


@pytest.mark.parametrize("role_dir", ROLES_WITH_REQUIRED, ids=[r.name for r in ROLES_WITH_REQUIRED])
def test_a_role_run_without_a_required_variable_stops_at_argument_validation(tmp_path: Path, role_dir: Path):
    options = entry_points(role_dir)["main"]["options"]
    required = {name: EXAMPLE_VALUES[options[name].get("type", "str")] for name in required_options(role_dir)}
    given = _validate_only(tmp_path, role_dir.name, required)
    assert given.returncode == 0, given.stdout[-3000:] + given.stderr[-3000:]
    for name in required:
        result = _validate_only(tmp_path, role_dir.name, {k: v for k, v in required.items() if k != name})
        out = result.stdout + result.stderr
        assert result.returncode != 0, f"{role_dir.name} ran without {name}:\n{out[-3000:]}"
        # it stops at the validation task, naming the variable: "missing required arguments: NAME", or, where
        # another default is computed from it (host_firewall_ssh_sources), "'NAME' is undefined"
        failed_task = out[: out.index("fatal: [localhost]")].rsplit("TASK [", 1)[-1]
        assert failed_task.startswith(f"{role_dir.name} : Validating arguments against arg spec 'main'"), out[-3000:]
        assert f"missing required arguments: {name}" in out or f"'{name}' is undefined" in out, out[-3000:]


# Set outside the inventory: Ansible itself defines the magic variables. (Secrets come through the lookup
# provisioner.separation.secret, from the inventory's provisioner_secrets_dir or the environment.)
EXTRA_VARIABLES = {"inventory_hostname"}
JINJA_WORDS = {"lookup", "query", "default", "true", "false", "none", "not", "and", "or", "is", "in"}


def _hosts_of(pattern: str, groups: dict[str, set[str]]) -> set[str]:
    hosts: set[str] = set()
    for part in pattern.split(":"):
        if part.startswith("!"):
            hosts -= groups[part[1:]]
        else:
            hosts |= groups[part]
    return hosts


def test_the_site_inventory_defines_what_the_required_variables_are_made_of(tmp_path: Path):
    """For the example site, every host a play of playbooks/site.yml reaches has each variable that play's
    required role variables are computed from (the inventory is provision's own, from engine/inventory.py)."""
    import json
    import re

    from helpers import EXAMPLE

    from provisioner.ansible_run.inventory import build_inventory, inventory_yaml
    from provisioner.site.load import load_site

    inventory_file = tmp_path / "hosts.yml"
    inventory_file.write_text(inventory_yaml(build_inventory(load_site(EXAMPLE))))
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory_file), "--list"],
        env={"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listed.stdout)
    hostvars = data["_meta"]["hostvars"]

    def members(group: str) -> set[str]:
        found = set(data.get(group, {}).get("hosts", []))
        for child in data.get(group, {}).get("children", []):
            found |= members(child)
        return found

    groups = {name: members(name) for name in data if name != "_meta"}
    checked = 0
    for play, role, role_vars in _role_entries(ROOT / "playbooks" / "site.yml"):
        hosts = _hosts_of(play["hosts"], groups)
        assert hosts, f"play {play['name']!r} reaches no host of the example site"
        for name in required_options(ROOT / "roles" / role):
            expression = re.sub(r"'[^']*'|\"[^\"]*\"", "", str(role_vars[name]))
            words = set(re.findall(r"[A-Za-z_]\w*", expression)) - JINJA_WORDS - EXTRA_VARIABLES
            for host in sorted(hosts):
                missing = sorted(w for w in words if w not in hostvars.get(host, {}))
                assert not missing, f"{role}: {name} on {host} needs {missing}, not in the site's inventory"
                checked += 1
    assert checked > 0
