"""The "Role Variables" table of each role's README, rendered from the role's meta/argument_specs.yml.

    python tools/role_variables.py            # rewrite the table in every roles/<role>/README.md
    python tools/role_variables.py --check    # exit 1 and name each README whose table differs from its spec
    python tools/role_variables.py roles/app  # only these roles

The table sits between two marker comments in the README's "Role Variables" section; text outside the
markers is left as it is. One row per option of the role's entry point `main` (a dict or a list of dicts has
a row for each of its sub-options, named `option.sub` or `option[].sub`), with its type, whether it is
required, its default and its description. Edit the spec, not the table.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES_DIR = ROOT / "roles"
BEGIN = "<!-- BEGIN role-variables: generated from meta/argument_specs.yml by tools/role_variables.py; do not edit -->"
END = "<!-- END role-variables -->"
SECTION = "## Role Variables"
ENTRY_POINT = "main"
NO_DEFAULT = "—"
# Ansible's documentation markup in descriptions: C(code), I(italic), B(bold), V(value), O(option), M(module)
_MARKUP = re.compile(r"\b([CIBVOM])\(([^()]*)\)")


def load_spec(role_dir: Path) -> dict[str, Any]:
    """The argument spec of the role's `main` entry point."""
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][ENTRY_POINT]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", r"\|")


def _markup(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        kind, value = m.group(1), m.group(2)
        if kind == "I":
            return f"*{value}*"
        if kind == "B":
            return f"**{value}**"
        return f"`{value}`"

    return _MARKUP.sub(repl, text)


def _description(option: dict[str, Any]) -> str:
    description = option.get("description", "")
    if isinstance(description, list):
        description = " ".join(description)
    parts = [_markup(description).strip()]
    if option.get("choices"):
        parts.append("One of " + ", ".join(f"`{_inline_yaml(c)}`" for c in option["choices"]) + ".")
    if option.get("no_log"):
        parts.append("Never logged.")
    return _cell(" ".join(p for p in parts if p))


def _inline_yaml(value: Any) -> str:
    """A value as a short YAML flow scalar or collection (strings quoted only when YAML needs it)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True, sort_keys=False)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[: -len("...")].strip()
    return " ".join(text.split())


def _default(option: dict[str, Any]) -> str:
    if "default" not in option:
        return NO_DEFAULT
    return _cell(f"`{_inline_yaml(option['default'])}`")


def _type(option: dict[str, Any]) -> str:
    kind = option.get("type", "str")
    if kind == "list" and option.get("elements"):
        return f"list of {option['elements']}"
    return kind


def _rows(options: dict[str, Any], prefix: str = "") -> list[str]:
    rows = []
    for name, option in options.items():
        path = f"{prefix}{name}"
        required = "yes" if option.get("required") else "no"
        rows.append(f"| `{path}` | {_type(option)} | {required} | {_default(option)} | {_description(option)} |")
        if option.get("options"):
            sub = f"{path}[]." if option.get("type") == "list" else f"{path}."
            rows.extend(_rows(option["options"], sub))
    return rows


def render_table(spec: dict[str, Any]) -> str:
    """The Markdown table of an entry point's options."""
    lines = ["| variable | type | required | default | description |", "|---|---|---|---|---|"]
    lines.extend(_rows(spec.get("options") or {}))
    return "\n".join(lines)


def render_block(spec: dict[str, Any]) -> str:
    """The table with its marker comments, as it stands in the README."""
    return f"{BEGIN}\n\n{render_table(spec)}\n\n{END}"


def replace_block(readme: str, block: str) -> str:
    """The README with its generated block replaced by `block` (or put at the top of the section).

    Raises ValueError when the README has neither the markers nor a "Role Variables" section.
    """
    if BEGIN in readme or END in readme:
        start, end = readme.find(BEGIN), readme.find(END)
        if start < 0 or end < 0 or end < start:
            raise ValueError("the role-variables markers are incomplete or out of order")
        return readme[:start] + block + readme[end + len(END) :]
    heading = re.search(rf"^{re.escape(SECTION)}[ \t]*\n", readme, re.M)
    if heading is None:
        raise ValueError(f"no '{SECTION}' section")
    # the first time: the hand-written table (if any) right under the heading gives way to the block
    rest = readme[heading.end() :]
    table = re.match(r"\n*(?:\|.*\n)+", rest)
    if table is not None:
        rest = rest[table.end() :]
    return readme[: heading.end()] + "\n" + block + "\n" + ("\n" if not rest.startswith("\n") else "") + rest


def current_block(readme: str) -> str | None:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        return None
    return readme[start : end + len(END)]


def check_role(role_dir: Path) -> str | None:
    """None when the README's table is the one the spec gives, else what is wrong."""
    readme = (role_dir / "README.md").read_text()
    found = current_block(readme)
    if found is None:
        return f"{role_dir / 'README.md'}: no generated Role Variables table (markers missing)"
    expected = render_block(load_spec(role_dir))
    if found != expected:
        return f"{role_dir / 'README.md'}: the Role Variables table differs from {role_dir / 'meta/argument_specs.yml'}"
    return None


def write_role(role_dir: Path) -> bool:
    """Render the table into the role's README; True when the file changed."""
    path = role_dir / "README.md"
    before = path.read_text()
    after = replace_block(before, render_block(load_spec(role_dir)))
    if after != before:
        path.write_text(after)
    return after != before


def role_dirs(roles_dir: Path = ROLES_DIR) -> list[Path]:
    return sorted(p.parents[1] for p in roles_dir.glob("*/meta/argument_specs.yml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README is out of date")
    parser.add_argument("roles", nargs="*", type=Path, help="role folders (default: every role under roles/)")
    args = parser.parse_args(argv)
    dirs = args.roles or role_dirs()
    if args.check:
        problems = [p for p in (check_role(d) for d in dirs) if p]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python tools/role_variables.py", file=sys.stderr)
        return 1 if problems else 0
    for d in dirs:
        if write_role(d):
            print(f"updated {d / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
