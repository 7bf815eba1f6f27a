"""Which key a deploy runs with, and proof that it is the deploy identity's before anything is sent."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from provisioner.errors import InputError, RefusedError, shown
from provisioner.site.model import Site


def _key_body(line: str) -> str:
    parts = line.split()
    return " ".join(parts[:2]) if len(parts) >= 2 else line.strip()


def key_path(site: Site, site_dir: Path, override: str | None) -> Path:
    """The deploy key's file: --key, or deploy.key_file beside the site file; it must be a readable file."""
    if override is not None:
        if not override.strip():
            raise InputError(
                "--key '': empty; name the deploy identity's private key file (or leave --key out to use "
                "deploy.key_file)"
            )
        path = Path(override)
        where = f"--key {shown(override)}"
    elif site.deploy is not None and site.deploy.key_file:
        path = Path(site.deploy.key_file)
        path = path if path.is_absolute() else site_dir / path
        where = f"deploy.key_file {site.deploy.key_file}"
    else:
        raise InputError("no deploy key: set deploy.key_file in the site file or pass --key FILE")
    wanted = "name the deploy identity's private key file"
    if path.is_dir():
        raise InputError(f"{where}: a folder; {wanted}")
    if not path.is_file():
        raise InputError(f"{where}: no such file; {wanted}")
    return path


def public_half(private: Path, label: str | None = None) -> str:
    """The public key of a private key file; `label` names the file in the error (not a temporary copy)."""
    result = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InputError(
            f"{label or private}: not an SSH private key without a passphrase; the deploy key (--key or "
            "deploy.key_file) is the deploy identity's private key"
        )
    return result.stdout.strip()


def readable_key(private: Path) -> str:
    """The public half of a deploy key, read from a mode-0600 copy (ssh-keygen refuses keys others can read)."""
    with private_copy(private) as copy:
        return public_half(copy, label=str(private))


def owner_of(site: Site, public: str) -> str:
    body = _key_body(public)
    for person in site.people:
        if _key_body(person.ssh_key) == body:
            return person.name
    return "someone not in the site file"


def require_deploy_identity(site: Site, env: str, private: Path, public: str) -> str:
    """The deploy identity's name, or a refusal saying whose key this is instead (`public`: the private key's
    public half, see `readable_key`)."""
    if site.deploy is None:
        raise RefusedError("the site declares no deploy identity (deploy: in the site file): releases cannot deploy")
    envs = site.deploy.environments or list(site.releases.path)
    if env not in envs:
        raise RefusedError(f"the deploy identity '{site.deploy.name}' does not deploy to {env} (deploy.environments)")
    if _key_body(public) != _key_body(site.deploy.ssh_key):
        raise RefusedError(
            f"deploys run only as the deploy identity '{site.deploy.name}'; the key {private} is "
            f"{owner_of(site, public)}'s, and {env} hosts accept only the deploy identity's key for deploys"
        )
    return site.deploy.name


@contextlib.contextmanager
def private_copy(private: Path) -> Iterator[Path]:
    """A mode-0600 copy for ssh (a git checkout does not keep file modes), removed afterwards."""
    try:
        content = private.read_bytes()
    except OSError as exc:
        raise InputError(f"{private}: cannot be read ({exc.strerror})") from None
    folder = Path(tempfile.mkdtemp(prefix="provision-deploy-key-"))
    try:
        copy = folder / "key"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)
