"""Where the kit's own files are, and where it keeps per-site state."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding playbooks/, roles/ and inventories/ (override with PROVISION_HOME)."""
    override = os.environ.get("PROVISION_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[1]


def inventories_dir() -> Path:
    return project_root() / "inventories"


def playbooks_dir() -> Path:
    return project_root() / "playbooks"


def roles_dir() -> Path:
    return project_root() / "roles"


def plugins_dir() -> Path:
    """The Ansible plugins of the collection provisioner.separation (the secret lookup)."""
    return project_root() / "plugins"


def control_catalogue() -> Path:
    """The A.8.31 control catalogue (stable IDs, titles): read by conformance and by site validation."""
    return Path(__file__).resolve().parent / "conformance" / "catalogue.yml"


def state_root() -> Path:
    """Per-site state, keys and run artifacts (override with PROVISION_STATE_DIR)."""
    override = os.environ.get("PROVISION_STATE_DIR")
    return Path(override).resolve() if override else project_root() / ".provision"


def site_state_dir(site: str) -> Path:
    return state_root() / site
