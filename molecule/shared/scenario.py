"""What every role's Molecule testinfra tests share: the scenario's inventory and a way into its machines.

Imported by roles/<role>/molecule/default/tests/test_default.py (which put this folder on sys.path).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess

import testinfra

INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])


def _plain(value):
    """`ansible-inventory --list` shows a value tagged `!unsafe` (all text of the inventory) as
    {"__ansible_unsafe": text}: the tests compare the text itself."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@functools.cache
def hostvars() -> dict:
    out = subprocess.run(
        ["ansible-inventory", "-i", INVENTORY, "--list"], capture_output=True, text=True, check=True
    ).stdout
    return _plain(json.loads(out)["_meta"]["hostvars"])


def machine(name: str):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY, sudo=True)


def address(name: str) -> str:
    return hostvars()[name]["ansible_host"]


def connect(source: str, target: str, port: int):
    """A TCP connection from inside `source`; stderr says why it failed."""
    return machine(source).run(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{target}/{port}' && echo connected")
