"""The site file is an attack surface (issue 16): `provision validate` on mutants of the example site.

Every file, however broken, is accepted or refused with SiteError within 2 s; every problem names the file and says
what is wrong; an accepted file yields an inventory whose template-like strings are all tagged !unsafe. The
strategies are in tests/support/site_mutations.py, the properties in tests/support/site_properties.py; this is the
short, reproducible run (the same examples every time), bench/site_fuzz.py the long one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, example_data
from hypothesis import HealthCheck, given, settings
from site_mutations import NASTY_FILES, site_files
from site_properties import LOAD_LIMIT, Sandbox, live_templates

from provisioner.ansible_run.inventory import inventory_yaml

BOUNDED = settings(
    max_examples=300,
    deadline=None,  # the sandbox enforces the time limit; hypothesis' deadline would also count mutant building
    derandomize=True,  # CI checks the same 300 files on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Judged on the command's own CPU time (the interpreter's start-up plus the loader's 2 s), not on the wall clock:
# on a 2-core machine whose other core runs TCG guests a starved process waits, and waiting is not hanging. A
# command that truly hangs still fails, at the wall-clock bound.
CLI_CPU_LIMIT = 3 * LOAD_LIMIT
CLI_WALL_LIMIT = 60.0
# A handful through the real command (a second each): one of each kind of trouble, and one file that must pass.
CLI_FILES = (
    "alias-bomb",
    "self-alias",
    "complex-key",
    "impossible-date",
    "lone-surrogate-in-a-colour",
    "utf-16",
    "template-in-name",
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(tmp_path_factory.mktemp("site-fuzz")) as box:
        yield box


@BOUNDED
@given(raw=site_files())
def test_any_site_file_is_accepted_or_refused_in_time(sandbox: Sandbox, raw: bytes) -> None:
    verdict = sandbox.check(raw)
    assert verdict.ok, f"{verdict}\nthe file ({len(raw)} bytes): {raw[:3000]!r}"


@pytest.mark.parametrize("name", sorted(NASTY_FILES))
def test_a_known_nasty_file_is_accepted_or_refused_in_time(sandbox: Sandbox, name: str) -> None:
    verdict = sandbox.check(NASTY_FILES[name])
    assert verdict.ok, str(verdict)


@pytest.mark.parametrize("name", CLI_FILES)
def test_a_known_nasty_file_gets_an_answer_not_a_traceback(tmp_path: Path, name: str) -> None:
    site = tmp_path / "site.yml"
    site.write_bytes(NASTY_FILES[name])
    rc, stderr, cpu = _validate_with_cpu_time(site)
    assert cpu <= CLI_CPU_LIMIT, f"provision validate used {cpu:.1f} s of CPU (limit {CLI_CPU_LIMIT:.0f} s)"
    assert rc in (0, 2), f"exit {rc}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]


def _validate_with_cpu_time(site: Path) -> tuple[int, str, float]:
    """`provision validate site`: its exit code, its stderr and the CPU seconds it used (user + system, from the
    kernel's account of the child); fails the test when it still runs after CLI_WALL_LIMIT seconds."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner", "validate", str(site)],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "COLUMNS": "200"}, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + CLI_WALL_LIMIT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"provision validate still running after {CLI_WALL_LIMIT:.0f} s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, err.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime


def test_the_template_check_finds_an_untagged_template() -> None:
    """The oracle of property (d) can fail: a plain dump of a template is found, the tagged inventory passes."""
    name = "{{ lookup('pipe','id') }}"
    inventory = {"all": {"vars": {"full_name": name, "people": [name]}}}
    assert live_templates(yaml.safe_dump(inventory)) == [name, name]
    assert live_templates(inventory_yaml(inventory)) == []


def test_the_example_itself_passes(sandbox: Sandbox) -> None:
    """The properties hold for the unchanged example: a failure above is the mutation's doing."""
    verdict = sandbox.check(yaml.safe_dump(example_data(), sort_keys=False).encode())
    assert verdict.outcome == "accepted", str(verdict)
