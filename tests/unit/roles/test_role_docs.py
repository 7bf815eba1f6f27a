"""Each role README's "Role Variables" table is the one tools/role_variables.py renders from meta/argument_specs.yml."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "role_variables.py"
ROLES = sorted(p.parents[1] for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def _load_tool():
    spec = importlib.util.spec_from_file_location("role_variables", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


role_variables = _load_tool()


def _copy_role(role_dir: Path, tmp_path: Path) -> Path:
    """The parts of a role the generator reads, in a throwaway folder."""
    copy = tmp_path / role_dir.name
    (copy / "meta").mkdir(parents=True)
    shutil.copy(role_dir / "meta" / "argument_specs.yml", copy / "meta" / "argument_specs.yml")
    shutil.copy(role_dir / "README.md", copy / "README.md")
    return copy


def _edit_spec(role_dir: Path, edit) -> None:
    path = role_dir / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(path.read_text())
    edit(specs["argument_specs"]["main"]["options"])
    path.write_text(yaml.safe_dump(specs, sort_keys=False))


def test_every_role_has_a_spec_and_a_readme():
    roles_with_tasks = sorted(p.parents[1] for p in ROOT.glob("roles/*/tasks/main.yml"))
    assert roles_with_tasks and roles_with_tasks == ROLES
    assert all((r / "README.md").is_file() for r in ROLES)


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_readme_table_matches_the_spec(role_dir: Path):
    problem = role_variables.check_role(role_dir)
    assert problem is None, f"{problem}; run: python tools/role_variables.py"


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_every_option_has_a_row(role_dir: Path):
    readme = (role_dir / "README.md").read_text()
    for name in role_variables.load_spec(role_dir)["options"]:
        assert f"| `{name}` |" in readme, f"{role_dir.name}: {name} has no row"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda o: o[next(iter(o))].update(description="Something else entirely."), id="description"),
        pytest.param(lambda o: o[next(iter(o))].update(default="changed"), id="default"),
        pytest.param(lambda o: o.update(new_option={"type": "str", "description": "New."}), id="new-option"),
        pytest.param(lambda o: o.pop(next(iter(o))), id="removed-option"),
        pytest.param(lambda o: o[next(iter(o))].update(required=True), id="required"),
    ],
)
def test_check_reports_a_spec_the_readme_no_longer_matches(tmp_path: Path, edit):
    role = _copy_role(ROOT / "roles" / "app", tmp_path)
    assert role_variables.check_role(role) is None
    _edit_spec(role, edit)
    problem = role_variables.check_role(role)
    assert problem is not None and "differs" in problem
    # the command-line check fails the same way, and rendering again makes it pass
    check = [sys.executable, str(TOOL), "--check", str(role)]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 1
    assert role_variables.write_role(role) is True
    assert role_variables.check_role(role) is None
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0


def test_check_reports_a_readme_without_markers(tmp_path: Path):
    role = _copy_role(ROOT / "roles" / "postgres", tmp_path)
    readme = role / "README.md"
    readme.write_text(readme.read_text().replace(role_variables.BEGIN, "").replace(role_variables.END, ""))
    assert "markers missing" in role_variables.check_role(role)


def test_text_outside_the_markers_is_kept(tmp_path: Path):
    role = _copy_role(ROOT / "roles" / "env_identity", tmp_path)
    before = (role / "README.md").read_text()
    _edit_spec(role, lambda o: o["env_identity_motd"].update(default="/etc/motd.d/provisioner"))
    role_variables.write_role(role)
    after = (role / "README.md").read_text()

    def outside(text: str) -> str:
        return text[: text.index(role_variables.BEGIN)] + text[text.index(role_variables.END) :]

    assert outside(after) == outside(before)
    assert "`/etc/motd.d/provisioner`" in after


def test_a_hand_written_table_is_replaced_the_first_time():
    readme = "# r\n\n## Role Variables\n\n| variable | default |\n|---|---|\n| `r_x` | `1` |\n\nKept.\n\n## License\n"
    spec = {"options": {"r_x": {"type": "int", "default": 1, "description": "X."}}}
    out = role_variables.replace_block(readme, role_variables.render_block(spec))
    assert "| variable | default |" not in out
    assert "| `r_x` | int | no | `1` | X. |" in out
    assert out.endswith("\n\nKept.\n\n## License\n")
    assert role_variables.replace_block(out, role_variables.render_block(spec)) == out


def test_rows():
    spec = {
        "options": {
            "r_list": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "description": ["Items:", "C(a|b)."],
                "options": {"name": {"type": "str", "required": True, "description": "Name."}},
            },
            "r_secret": {"type": "str", "required": True, "no_log": True, "description": "Secret."},
            "r_mode": {"type": "str", "default": "no", "choices": ["no", "yes"], "description": "Mode."},
            "r_prefix": {"type": "str", "default": "pv-deny ", "description": "Prefix."},
            "r_template": {"type": "str", "default": "{{ x | upper }}", "description": "T."},
        }
    }
    table = role_variables.render_table(spec)
    assert table.splitlines()[0] == "| variable | type | required | default | description |"
    assert "| `r_list` | list of dict | no | `[]` | Items: `a\\|b`. |" in table
    assert "| `r_list[].name` | str | yes | — | Name. |" in table
    assert "| `r_secret` | str | yes | — | Secret. Never logged. |" in table
    assert "| `r_mode` | str | no | `'no'` | Mode. One of `'no'`, `'yes'`. |" in table
    assert "| `r_prefix` | str | no | `'pv-deny '` | Prefix. |" in table
    assert "| `r_template` | str | no | `'{{ x \\| upper }}'` | T. |" in table
