"""Data handed to Ansible as data: YAML in which every string is tagged `!unsafe`.

Ansible evaluates `{{ ... }}` in any variable it reads from an inventory or an extra-vars file unless the value
is marked unsafe. Everything provision hands to Ansible (the inventory, the extra vars of a run) comes from the
site file, a release artifact or the controller's state, so none of it may ever run as a template.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Literal(str):
    """A string Ansible must never evaluate as a template."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


_UnsafeDumper.add_representer(_Literal, lambda dumper, text: dumper.represent_scalar("!unsafe", str(text)))


# Connection variables stay plain strings: tools that read an inventory without Ansible's loader (testinfra, AWX
# inventory sync) expect `ansible_host` and friends as text. They can hold no template: only characters of
# addresses, user names and paths are allowed in them, checked here.
_CONNECTION_VALUE = re.compile(r"[A-Za-z0-9._/@:+-]*")


def _connection_value(key: str, value: str) -> str:
    if not _CONNECTION_VALUE.fullmatch(value):
        raise ValueError(f"{key}={value!r}: a connection variable holds only address, name and path characters")
    return value


def _literal(value: Any, key: str = "") -> Any:
    if isinstance(value, str) and key.startswith("ansible_"):
        return _connection_value(key, value)
    if isinstance(value, str):
        return _Literal(value)
    if isinstance(value, dict):
        return {k: _literal(item, str(k)) for k, item in value.items()}  # keys are names the site file has checked
    if isinstance(value, list | tuple):
        return [_literal(item) for item in value]
    return value


def unsafe_yaml(data: Any) -> str:
    """`data` as YAML, every string value tagged `!unsafe` but connection variables (`ansible_*`, checked to hold
    no template characters); keys stay plain: Ansible never templates them."""
    return yaml.dump(_literal(data), Dumper=_UnsafeDumper, sort_keys=False, default_flow_style=False)
