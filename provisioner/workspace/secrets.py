"""Secrets the controller generates for a site (database passwords), kept in files of mode 0600."""

from __future__ import annotations

import secrets

from provisioner.site import policy
from provisioner.site.model import Site
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState


def ensure_secret(state: SiteState, name: str) -> str:
    state.ensure()
    state.secrets_dir.mkdir(mode=0o700, exist_ok=True)
    path = state.secrets_dir / name
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(24), mode=0o600)
    return path.read_text().strip()


def database_password_name(user: str, env: str) -> str:
    return f"db-{user}-{env}"


def ensure_site_secrets(state: SiteState, site: Site) -> None:
    """Every password the playbooks will look up: the app's and each developer's, per environment, and the
    controller's reader's outside production."""
    for env in site.environments:
        ensure_secret(state, database_password_name("app", env.name))
        for developer in policy.database_roles(site, env)["developers"]:
            ensure_secret(state, database_password_name(developer, env.name))
    for env in policy.data_reader_environments(site):
        ensure_secret(state, database_password_name(policy.DATA_READER_ROLE, env.name))
