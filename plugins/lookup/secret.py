"""provisioner.separation.secret: a site secret (database password, log shipping certificate) by name."""

from __future__ import annotations

DOCUMENTATION = r"""
name: secret
short_description: A secret of the site, by name, from the environment or the site's secret folder
description:
  - Returns the value of each named secret (for example C(db-app-prod), C(log-ca.pem)).
  - First from the environment variable C(PROVISIONER_SECRET_<NAME>), the name upper-cased with every character
    other than a letter or digit made C(_) (C(db-app-prod) is C(PROVISIONER_SECRET_DB_APP_PROD)). This is how an
    AWX or Automation Controller credential injects a secret.
  - Otherwise from the file of that name in the folder given by the variable C(provisioner_secrets_dir) (the
    inventory that C(provision apply) writes sets it) or, without it, the environment variable
    C(PROVISIONER_SECRETS_DIR).
  - A missing secret is an error naming the secret and every place looked at; nothing falls back to an empty value.
options:
  _terms:
    description: Names of secrets; letters, digits, C(.), C(_) and C(-), not starting with a dot.
    required: true
"""

EXAMPLES = r"""
- name: The application's database password in this environment
  ansible.builtin.set_fact:
    app_password: "{{ lookup('provisioner.separation.secret', 'db-app-' ~ env_name) }}"
"""

RETURN = r"""
_raw:
  description: The secrets' values, trailing newlines removed, never evaluated as templates.
  type: list
  elements: str
"""

import os
import re
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.unsafe_proxy import wrap_var

NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
FOLDER_VARIABLE = "provisioner_secrets_dir"
FOLDER_ENVIRONMENT = "PROVISIONER_SECRETS_DIR"


def environment_name(secret: str) -> str:
    return "PROVISIONER_SECRET_" + re.sub(r"[^A-Z0-9]", "_", secret.upper())


def secret_folder(variables: dict[str, Any] | None) -> tuple[Path | None, str]:
    """The secret folder and where its path came from."""
    given = (variables or {}).get(FOLDER_VARIABLE)
    if given:
        return Path(str(given)), f"variable {FOLDER_VARIABLE}"
    if os.environ.get(FOLDER_ENVIRONMENT):
        return Path(os.environ[FOLDER_ENVIRONMENT]), f"environment variable {FOLDER_ENVIRONMENT}"
    return None, f"neither variable {FOLDER_VARIABLE} nor environment variable {FOLDER_ENVIRONMENT} is set"


def read_secret(secret: str, variables: dict[str, Any] | None) -> str:
    if not NAME.match(secret):
        raise AnsibleLookupError(
            f"provisioner.separation.secret: {secret!r} is not a secret name "
            "(letters, digits, '.', '_' and '-', not starting with a dot, at most 128)"
        )
    env_name = environment_name(secret)
    if env_name in os.environ:
        return os.environ[env_name].rstrip("\n")
    folder, source = secret_folder(variables)
    if folder is not None:
        path = folder / secret
        try:
            return path.read_text(encoding="utf-8").rstrip("\n")
        except FileNotFoundError:
            where = f"no file {path} (folder from {source})"
        except OSError as error:
            raise AnsibleLookupError(f"provisioner.separation.secret: {secret}: cannot read {path}: {error}") from None
    else:
        where = source
    raise AnsibleLookupError(
        f"provisioner.separation.secret: secret {secret!r} not found: environment variable {env_name} is not set "
        f"and {where}"
    )


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        self.set_options(var_options=variables, direct=kwargs)
        return [wrap_var(read_secret(str(term), variables)) for term in terms]
