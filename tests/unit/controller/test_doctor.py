"""`provision doctor` checks the machine before anything runs, and names what is missing with the fix."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import run_cli


def _path_without(tmp_path: Path, hidden: str) -> str:
    """A PATH with every program of this machine's PATH except one."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ["PATH"].split(":"):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else []:
            target = folder / program.name
            if program.name != hidden and not target.exists() and os.access(program, os.X_OK):
                target.symlink_to(program)
    return str(folder)


def test_doctor_passes_on_this_machine():
    result = run_cli("doctor", "--backend", "all", "--suite", "--json")
    assert result.rc == 0, result.stdout + result.stderr
    report = result.json
    assert report["ok"] is True and report["fix"] is None
    checks = {f["check"] for f in report["findings"]}
    assert {"program lxc-start", "kernel bridge", "kernel nf_tables", "kernel overlayfs", "disk /var/lib/lxc"} <= checks


def test_a_program_hidden_from_path_is_named_with_its_package_and_exit_2(tmp_path):
    result = run_cli("doctor", "example", env={"PATH": _path_without(tmp_path, "nft")})
    assert result.rc == 2, result.stdout + result.stderr
    assert "program nft" in result.stdout and "MISSING" in result.stdout
    assert "apt-get install --no-install-recommends nftables" in result.stderr
    assert "kernel nf_tables" in result.stdout and "not tried: nft missing" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_site_and_a_backend_together_are_bad_input():
    result = run_cli("doctor", "example", "--backend", "lxc")
    assert result.rc == 2 and "name a site or --backend, not both" in result.stderr
