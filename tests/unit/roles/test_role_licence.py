"""One licence: every role declares the project's licence (pyproject.toml), in meta/main.yml and in its README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.parents[1] for p in ROOT.glob("roles/*/meta/main.yml"))
PROJECT_LICENCE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]


def test_the_project_declares_one_spdx_licence():
    assert isinstance(PROJECT_LICENCE, str) and re.fullmatch(r"[A-Za-z0-9.+-]+", PROJECT_LICENCE)


def test_no_other_licence_file_contradicts_it():
    """A licence file anywhere in the project (none today) must be for the same licence."""
    files = [
        p
        for p in ROOT.rglob("*")
        if p.is_file()
        and re.fullmatch(r"(LICEN[CS]E|COPYING)(\..*)?", p.name, re.I)
        and not {".venv", ".git", ".provision", "node_modules"} & set(p.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)
    ]
    marker = {"Apache-2.0": "Apache License", "MIT": "MIT License"}.get(PROJECT_LICENCE, PROJECT_LICENCE)
    for path in files:
        assert marker in path.read_text(errors="replace")[:2000], f"{path.relative_to(ROOT)} is not {PROJECT_LICENCE}"


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_role_declares_the_project_licence(role_dir: Path):
    meta = yaml.safe_load((role_dir / "meta" / "main.yml").read_text())
    assert meta["galaxy_info"]["license"] == PROJECT_LICENCE
    readme = (role_dir / "README.md").read_text()
    section = re.search(r"^## License\n\n(.+?)(?:\n## |\Z)", readme, re.M | re.S)
    assert section is not None, f"{role_dir.name}: README has no License section"
    assert section.group(1).split()[0].rstrip(",.") == PROJECT_LICENCE, section.group(1)
