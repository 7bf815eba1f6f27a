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


def test_doctor_names_the_pinned_collections_this_virtualenv_holds():
    from provisioner.engine.doctor import _collections

    found = _collections()
    assert found.ok, found.detail
    assert "community.postgresql 4.2.0" in found.detail and "ansible.posix 2.1.0" in found.detail


def test_doctor_says_which_collection_is_missing_and_how_to_get_it(tmp_path):
    from provisioner.engine.doctor import _collections

    posix = tmp_path / "ansible" / "posix"
    posix.mkdir(parents=True)
    (posix / "MANIFEST.json").write_text('{"collection_info": {"version": "1.5.4"}}')
    found = _collections(tmp_path)
    assert not found.ok and found.fix == "make venv"
    assert "community.postgresql absent" in found.detail and "ansible.posix 1.5.4" in found.detail
    assert "the roles need community.postgresql 4.2.0, ansible.posix 2.1.0" in found.detail
