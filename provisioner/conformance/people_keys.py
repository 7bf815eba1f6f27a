"""The people's private keys `provision verify --keys DIR` attempts logins with: checked before the run starts.

A key file whose mode lets group or others read it, or that belongs to another account, is refused (exit 2, nothing
run), naming the file and its mode: verify does not use a key someone else may have read or replaced. The site's
`demo-keys/` folder, used when --keys is not given, holds the disposable example keys that are public in the
repository (a git checkout does not keep file modes); the suite uses private copies of those.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from provisioner.errors import InputError, shown
from provisioner.workspace.keyfiles import private_key_problem


def people_key_problems(keys_dir: Path, people: Iterable[str]) -> list[str]:
    """`<file>: <problem>` for each person's key in `keys_dir` that must not be used; a person without a file is
    fine (their login attempts are skipped)."""
    problems = []
    for name in people:
        path = keys_dir / name
        if os.path.lexists(path):
            problem = private_key_problem(path)
            if problem is not None:
                problems.append(f"{path}: {problem}")
    return problems


def check_people_keys(keys: str, keys_dir: Path, people: Iterable[str]) -> None:
    problems = people_key_problems(keys_dir, people)
    if problems:
        raise InputError(
            f"--keys {shown(keys)}: verify uses only private keys that are yours and mode 0600:\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )
