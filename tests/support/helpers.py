"""Shared helpers: run the real `provision` CLI, and build throwaway copies of site files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example" / "site.yml"
DEMO_KEYS = ROOT / "inventories" / "example" / "demo-keys"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> object:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def example_data() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


# Two access networks for the example (issue 18): the developers' and testers' office, reaching dev and test, and
# the administrators' own, reaching every environment (production only because it is admins_only).
OFFICE_NETWORK = {"name": "office", "cidr": "10.90.50.0/24", "description": "developers' and testers' desks",
                  "reaches": ["dev", "test"], "vlan": 50}  # fmt: skip
ADMINS_NETWORK = {"name": "admins", "cidr": "10.90.60.0/28", "description": "the administrators' desks",
                  "reaches": ["dev", "test", "prod"], "admins_only": True, "vlan": 60}  # fmt: skip


def example_with_access_networks() -> dict:
    """The example site with the office and admins access networks."""
    data = example_data()
    data["access_networks"] = [dict(OFFICE_NETWORK), dict(ADMINS_NETWORK)]
    return data


def proxmox_backend(host: str, port: int, **settings: object) -> dict:
    """The `backend` section of a site on a (fake) Proxmox cluster: node pve1, template 9000, token from env."""
    return {
        "type": "proxmox",
        "host": f"{host}:{port}",
        "node": "pve1",
        "token": {"id": "root@pam!provisioner", "env": "PROVISION_PVE_TOKEN"},
        "verify_tls": False,
        "template": 9000,
        **settings,
    }


def write_site(directory: Path, data: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "site.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def short_temp_folder() -> Iterator[Path]:
    """A temporary folder with a short path: a site state under pytest's own tmp_path (under xdist,
    `/tmp/pytest-of-root/pytest-N/popen-gwN/<test name>`) is nearly too deep for its SSH socket folder."""
    folder = Path(tempfile.mkdtemp(prefix="pv")).resolve()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def private_key_copies(source: Path, folder: Path) -> Path:
    """`folder` holding copies of the key files in `source`, mode 0600: what `provision verify --keys` accepts
    (a git checkout leaves the demo keys 0644, and verify refuses keys others may read)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key in sorted(source.iterdir()):
        if key.is_file() and key.name != "README.md":
            copy = folder / key.name
            copy.write_bytes(key.read_bytes())
            copy.chmod(0o600 if key.suffix != ".pub" else 0o644)
    return folder


def lab_prerequisites_missing() -> str | None:
    """Why the LXC lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the LXC lab needs root"
    for command in ("lxc-start", "nft", "ip"):
        if shutil.which(command) is None:
            return f"{command} is not installed (make setup installs it)"
    return None


def release_artifact(directory: Path, version: str, page: str | None = None) -> Path:
    """A sample release of the example shop: VERSION plus the page template the `app` role serves."""
    import tarfile

    source = directory / f"shop-{version}"
    source.mkdir(parents=True, exist_ok=True)
    (source / "VERSION").write_text(version + "\n")
    (source / "index.html").write_text(page or f"<h1>Example shop</h1>\n<p>Welcome. This is release {version}.</p>\n")
    archive = directory / f"shop-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
    return archive
