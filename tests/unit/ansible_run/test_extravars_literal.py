"""Extra vars of a run (a release's version text, paths) reach the play as text, never as a template."""

from __future__ import annotations

import os
from pathlib import Path

import ansible_runner
from helpers import ROOT

from provisioner.ansible_run.runner import write_extravars

PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        content: "{{ release_version }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def _run(private: Path) -> None:
    (private / "project").mkdir(parents=True, exist_ok=True)
    (private / "project" / "play.yml").write_text(PLAY)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    result = ansible_runner.run(
        private_data_dir=str(private),
        playbook="play.yml",
        quiet=True,
        envvars={"ANSIBLE_PYTHON_INTERPRETER": str(ROOT / ".venv" / "bin" / "python"), "PATH": env["PATH"]},
        rotate_artifacts=0,
    )
    assert result.rc == 0, (private / "artifacts").as_posix()


def test_a_release_version_with_braces_arrives_as_written(tmp_path):
    marker, out = tmp_path / "ran", tmp_path / "out"
    version = f"1.0 {{{{ lookup('pipe', 'touch {marker}') }}}}"
    write_extravars(tmp_path / "run", {"release_version": version, "out": str(out)})
    assert "!unsafe" in (tmp_path / "run" / "env" / "extravars").read_text()
    _run(tmp_path / "run")
    assert out.read_text() == version
    assert not marker.exists()


def test_the_same_extra_vars_as_plain_yaml_would_run_the_template(tmp_path):
    """The negative twin: without the marking, Ansible runs the lookup (so the test above can fail)."""
    marker, out = tmp_path / "ran", tmp_path / "out"
    env = tmp_path / "run" / "env"
    env.mkdir(parents=True)
    (env / "extravars").write_text(f"release_version: \"{{{{ lookup('pipe', 'touch {marker}') }}}}\"\nout: {out}\n")
    _run(tmp_path / "run")
    assert marker.exists()
