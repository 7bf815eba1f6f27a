"""Data handed to Ansible as data: YAML in which every string is tagged `!unsafe`.

Ansible evaluates `{{ ... }}` in any variable it reads from an inventory or an extra-vars file unless the value
is marked unsafe. Everything provision hands to Ansible (the inventory, the extra vars of a run) comes from the
site file, a release artifact or the controller's state, so none of it may ever run as a template.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Literal(str):
    """A string Ansible must never evaluate as a template."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


_UnsafeDumper.add_representer(_Literal, lambda dumper, text: dumper.represent_scalar("!unsafe", str(text)))


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        return _Literal(value)
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}  # keys are names the site file has checked
    if isinstance(value, list | tuple):
        return [_literal(item) for item in value]
    return value


def unsafe_yaml(data: Any) -> str:
    """`data` as YAML, every string value tagged `!unsafe` (keys stay plain: Ansible never templates them)."""
    return yaml.dump(_literal(data), Dumper=_UnsafeDumper, sort_keys=False, default_flow_style=False)
