"""The roles as the collection provisioner.separation (galaxy.yml), and the execution environment for AWX."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collection")
    result = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300, env=_env(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    tarball = out / f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    assert tarball.is_file(), result.stdout
    return tarball


def test_the_collection_holds_every_role_and_the_lookup(built):
    with tarfile.open(built) as archive:
        names = set(archive.getnames())
    for role in ROLES:
        assert f"roles/{role}/tasks/main.yml" in names
        assert f"roles/{role}/meta/argument_specs.yml" in names
    assert {"plugins/lookup/secret.py", "meta/runtime.yml", "MANIFEST.json", "FILES.json"} <= names


def test_the_collection_ships_no_code_tests_inventories_or_keys(built):
    """Only the manifest's directives go in: the repository's Python package, its tests, the example's demo
    keys and a lab's state never do, nor the roles' molecule scenarios."""
    with tarfile.open(built) as archive:
        names = archive.getnames()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"MANIFEST.json", "FILES.json", "roles", "plugins", "meta", "docs"}, tops
    assert not [n for n in names if "/molecule" in n or n.endswith((".key", ".pyc")) or "demo-keys" in n]
    assert (ROOT / "inventories" / "example" / "demo-keys").is_dir()  # there to be left out


def test_an_installed_collection_serves_playbooks_of_ones_own(built, tmp_path):
    """Installed the way Ansible users consume roles, it documents every role and the lookup by its FQCN."""
    target = tmp_path / "collections"
    env = {**_env(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(target)}
    installed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(target), str(built)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "role", "-l", "provisioner.separation"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    documented = {line.rstrip(":") for line in listed.stdout.splitlines() if line.startswith("provisioner.")}
    assert documented == {f"provisioner.separation.{role}" for role in ROLES}
    lookup = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "ansible.builtin.debug",
         "-a", "msg={{ lookup('provisioner.separation.secret', 'db-app-dev') }}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**env, "PROVISIONER_SECRET_DB_APP_DEV": "injected", "ANSIBLE_LOCALHOST_WARNING": "0"},
    )  # fmt: skip
    assert lookup.returncode == 0 and '"msg": "injected"' in lookup.stdout, lookup.stdout + lookup.stderr


def test_the_collection_declares_the_collections_its_roles_use():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    pinned = {c["name"] for c in yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]}
    assert set(galaxy["dependencies"]) == pinned


def test_the_execution_environment_context_is_created_with_the_suites_versions(tmp_path):
    """`ansible-builder create` (the step before a container build, which needs podman or docker): the image
    gets the ansible-core and ansible-runner this suite runs with and the pinned collections."""
    context = tmp_path / "context"
    result = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", str(ROOT / "execution-environment.yml"),
         "-c", str(context), "--output-filename", "Containerfile"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (context / "Containerfile").read_text()
    assert f"ansible-core=={version('ansible-core')}" in containerfile
    assert f"ansible-runner=={version('ansible-runner')}" in containerfile
    copied = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert copied == yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())
    assert "openssh-clients" in (context / "_build" / "bindep.txt").read_text()


def test_the_generated_ansible_cfg_finds_the_pinned_collections_without_this_virtualenv(tmp_path):
    """An ansible outside the virtualenv does not scan its site-packages: the generated ansible.cfg names the folder
    `make venv` installed the pinned collections into (ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=False stands for such an
    ansible; without the cfg it finds neither collection)."""
    from provisioner.ansible_run.runner import write_ansible_cfg
    from provisioner.workspace.site_state import SiteState

    cfg = write_ansible_cfg(SiteState("example", tmp_path / "state"))
    env = {**_env(tmp_path), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False"}

    def listed(with_cfg: bool) -> str:
        result = subprocess.run(
            [str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**env, "ANSIBLE_CONFIG": str(cfg) if with_cfg else str(tmp_path / "none.cfg")},
        )  # fmt: skip
        return result.stdout

    pins = [c["name"] for c in yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]]
    assert all(name in listed(True) for name in pins)
    assert not any(name in listed(False) for name in pins)
