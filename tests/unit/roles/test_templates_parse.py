"""Every role template is valid Jinja: a shell `${#var}` or a stray `{#` fails here, not on the hosts."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from helpers import ROOT

TEMPLATES = sorted((ROOT / "roles").glob("*/templates/**/*.j2"))


def test_there_are_templates_to_check():
    assert len(TEMPLATES) >= 10


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(t.relative_to(ROOT / "roles")) for t in TEMPLATES])
def test_template_parses(template: Path):
    try:
        jinja2.Environment().parse(template.read_text())
    except jinja2.TemplateSyntaxError as exc:
        pytest.fail(f"{template.relative_to(ROOT)}:{exc.lineno}: {exc.message}")
