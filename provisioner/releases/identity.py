"""Which key a deploy runs with, and proof that it is the deploy identity's before anything is sent."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from provisioner.errors import InputError, RefusedError
from provisioner.site.model import Site


def _key_body(line: str) -> str:
    parts = line.split()
    return " ".join(parts[:2]) if len(parts) >= 2 else line.strip()


def key_path(site: Site, site_dir: Path, override: str | None) -> Path:
    if override:
        path = Path(override)
        where = f"--key {override}"
    elif site.deploy is not None and site.deploy.key_file:
        path = Path(site.deploy.key_file)
        path = path if path.is_absolute() else site_dir / path
        where = f"deploy.key_file {site.deploy.key_file}"
    else:
        raise InputError("no deploy key: set deploy.key_file in the site file or pass --key FILE")
    if not path.is_file():
        raise InputError(f"{where}: no such file")
    return path


def public_half(private: Path) -> str:
    result = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InputError(f"{private}: not an SSH private key without a passphrase")
    return result.stdout.strip()


def owner_of(site: Site, public: str) -> str:
    body = _key_body(public)
    for person in site.people:
        if _key_body(person.ssh_key) == body:
            return person.name
    return "someone not in the site file"


def require_deploy_identity(site: Site, env: str, private: Path) -> str:
    """The deploy identity's name, or a refusal saying whose key this is instead."""
    if site.deploy is None:
        raise RefusedError("the site declares no deploy identity (deploy: in the site file): releases cannot deploy")
    envs = site.deploy.environments or list(site.releases.path)
    if env not in envs:
        raise RefusedError(f"the deploy identity '{site.deploy.name}' does not deploy to {env} (deploy.environments)")
    with private_copy(private) as copy:
        public = public_half(copy)
    if _key_body(public) != _key_body(site.deploy.ssh_key):
        raise RefusedError(
            f"deploys run only as the deploy identity '{site.deploy.name}'; the key {private} is "
            f"{owner_of(site, public)}'s, and {env} hosts accept only the deploy identity's key for deploys"
        )
    return site.deploy.name


@contextlib.contextmanager
def private_copy(private: Path) -> Iterator[Path]:
    """A mode-0600 copy for ssh (a git checkout does not keep file modes), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="provision-deploy-key-"))
    try:
        copy = folder / "key"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private.read_bytes())
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)
