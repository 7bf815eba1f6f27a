"""The deploy identity's sudo rule (roles/accounts/templates/etc/sudoers.d/pv-deploy.j2) allows the deploy command
with its one argument form only: RELEASE_ID SHA256 COUNT:HASH, as a sudoers regular expression (sudo >= 1.9.10;
Debian 12 ships 1.9.13). The rule is checked with visudo where this machine has it; sudo's matching (the
arguments joined with single spaces, the whole line against the POSIX extended expression between ^ and $) is
replayed with Python's re, whose syntax coincides for the characters the expression is limited to."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import types
from pathlib import Path

import jinja2
import pytest
import yaml
from helpers import ROOT

ACCOUNTS = ROOT / "roles" / "accounts"
APP = ROOT / "roles" / "app"
RULE_TEMPLATE = ACCOUNTS / "templates" / "etc" / "sudoers.d" / "pv-deploy.j2"
COMMAND_TEMPLATE = APP / "templates" / "usr" / "local" / "sbin" / "provision-deploy.j2"
COMMAND = "/usr/local/sbin/provision-deploy"
D, H = "0123456789abcdef" * 4, "f" * 64


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["to_json"] = json.dumps
    return environment


def render(template: Path, role: Path) -> str:
    values = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    values = {k: _environment().from_string(v).render(values) if isinstance(v, str) else v for k, v in values.items()}
    return _environment().from_string(template.read_text()).render(values, ansible_managed="Ansible managed (test)")


def rule() -> tuple[str, str]:
    """(command path, argument expression) of the one rule the rendered file holds."""
    lines = [line for line in render(RULE_TEMPLATE, ACCOUNTS).splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1, lines
    matched = re.fullmatch(r"%pv-deploy ALL=\(root\) NOPASSWD: (/\S+) (\^.*\$)", lines[0])
    assert matched, lines[0]
    return matched.group(1), matched.group(2)


def sudo_allows(command: str, *args: str) -> bool:
    """sudo's verdict for the deploy group (sudoers(5), "Regular expressions"): the path literally, then the
    arguments joined with single spaces matched whole; POSIX ^ and $ hold only at the ends of that line."""
    path, expression = rule()
    return command == path and re.fullmatch(expression[1:-1], " ".join(args)) is not None


def test_the_rule_pins_the_command_and_its_argument_form():
    assert rule() == (COMMAND, r"^r[1-9][0-9]{0,8} [0-9a-f]{64} [1-9][0-9]{0,8}:[0-9a-f]{64}$")
    path, expression = rule()
    assert re.fullmatch(r"\^[\[\]0-9a-fr{}, :-]+\$", expression), "only what POSIX ERE and Python re read alike"
    assert len(expression) <= 1024, "sudoers limits a regular expression to 1024 characters"
    app_defaults = yaml.safe_load((APP / "defaults" / "main.yml").read_text())
    assert app_defaults["app_deploy_command"] == path, "the app role installs the command the rule names"


def test_the_rules_argument_form_is_the_one_the_deploy_command_checks():
    command = types.ModuleType("provision_deploy")  # not __main__: its main() does not run
    exec(compile(render(COMMAND_TEMPLATE, APP), COMMAND, "exec"), command.__dict__)
    patterns = [command.RELEASE_ID.pattern, command.DIGEST.pattern, command.LEDGER_HEAD.pattern]
    assert rule()[1] == "^" + " ".join(p.replace("(", "").replace(")", "") for p in patterns) + "$"


@pytest.mark.parametrize(
    "args",
    [("r1", D, "1:" + H), ("r123456789", D, "999999999:" + H), ("r10", D, "10:" + "0" * 64)],
)
def test_the_legitimate_form_is_allowed(args):
    assert sudo_allows(COMMAND, *args)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("r1\n../../../../etc/sudoers.d", D, "1:" + H), "a newline and a ../ tail in the id"),
        (("r1/../../x", D, "1:" + H), "a path in the id"),
        (("r1", D, "1:" + H, "extra"), "an extra argument"),
        (("r1", D, "1:" + H, ""), "a trailing empty argument"),
        (("r1", D), "a missing argument"),
        ((), "no arguments"),
        (("r1", D, "1:" + H + "\n"), "a trailing newline"),
        (("r1", D, "1:" + H + "\nr2"), "a second line"),
        (("r1", D.upper(), "1:" + H), "an uppercase digest"),
        (("r0", D, "1:" + H), "release r0"),
        (("r1", D, "0:" + H), "a ledger count of 0"),
        (("r1", D, "1:" + H, "-h"), "an option after the arguments"),
        (("-h", "r1", D, "1:" + H), "an option before the arguments"),
        (("r1", D, "1:" + H[:-1]), "a short hash"),
    ],
)
def test_any_other_argument_form_is_refused(args, why):
    assert not sudo_allows(COMMAND, *args), why


def test_another_command_or_path_is_refused():
    assert not sudo_allows("/bin/sh", "r1", D, "1:" + H)
    assert not sudo_allows("/usr/local/sbin/../sbin/provision-deploy", "r1", D, "1:" + H)


def _validate_command() -> str:
    """The role's own check of the rule, as its template task runs it before installing the file."""
    tasks = yaml.safe_load((ACCOUNTS / "tasks" / "sudo.yml").read_text())
    task = next(t for t in tasks if t.get("ansible.builtin.template", {}).get("dest") == "/etc/sudoers.d/pv-deploy")
    assert task["ansible.builtin.template"]["mode"] == "0440"
    return task["ansible.builtin.template"]["validate"]


def test_the_accounts_role_checks_the_rule_with_visudo_before_installing_it():
    assert _validate_command() == "/usr/sbin/visudo -cf %s"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shlex.split(_validate_command().replace("%s", str(path))), capture_output=True, text=True)


@pytest.mark.skipif(
    not Path(shlex.split(_validate_command())[0]).exists(),
    reason="sudo's visudo is not installed on this controller (the role runs the same check on every host)",
)
def test_the_roles_visudo_check_accepts_the_rendered_rule_and_refuses_a_broken_one(tmp_path):
    rendered = tmp_path / "pv-deploy"
    rendered.write_text(render(RULE_TEMPLATE, ACCOUNTS))
    rendered.chmod(0o440)
    checked = _validate(rendered)
    assert checked.returncode == 0 and "parsed OK" in checked.stdout, checked.stdout + checked.stderr
    broken = tmp_path / "broken"
    broken.write_text(rendered.read_text().replace(COMMAND, "provision-deploy"))  # not a fully qualified path
    refused = _validate(broken)
    assert refused.returncode == 1, refused.stdout + refused.stderr
