"""The Ansible collections the roles use, pinned, installed into this virtualenv without a Galaxy server.

ansible-core finds collections in an `ansible_collections` folder on its interpreter's sys.path (as well as in its
collection paths), so the virtualenv's site-packages serves as the collection path of this kit. The pinned
collections are taken out of the community package `ansible` on PyPI, the release that bundles exactly these
versions: pip downloads that one wheel (without dependencies, through the machine's usual pip configuration), only the
pinned collections' folders are extracted, and each one's MANIFEST.json must state the pinned version. When every
pinned collection is installed at its version, nothing is downloaded.

collections/requirements.yml lists the same pins for Ansible's own tools; tests/unit/controller/test_collection_pins.py
holds the two, what is installed and what the roles call equal.

Run by the Makefile's `venv` target: `python -m provisioner.controller.collection_pins`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from provisioner.errors import ProvisionError

# The community package whose wheel carries the pinned versions below (ansible 12.3.0: ansible-core 2.19).
BUNDLE = "ansible==12.3.0"


@dataclass(frozen=True)
class Collection:
    namespace: str
    name: str
    version: str

    @property
    def fqcn(self) -> str:
        return f"{self.namespace}.{self.name}"

    def __str__(self) -> str:
        return f"{self.fqcn} {self.version}"


PINNED: tuple[Collection, ...] = (
    Collection("community", "postgresql", "4.2.0"),  # the postgres role: roles, database, privileges, cleanup
    Collection("ansible", "posix", "2.1.0"),  # the env_gateway role: sysctl
)


class CollectionError(ProvisionError):
    """A pinned collection could not be installed as pinned."""


# Downloads the bundle's wheel into the given folder and returns its path.
Download = Callable[[Path], Path]


def collections_root() -> Path:
    """The `ansible_collections` folder in this interpreter's site-packages (where ansible-core looks)."""
    return Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"


def _manifest_version(folder: Path) -> str | None:
    try:
        manifest = json.loads((folder / "MANIFEST.json").read_text())
        version = manifest["collection_info"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def installed_version(root: Path, collection: Collection) -> str | None:
    """The version the installed collection's MANIFEST.json states, or None when it is not installed (or unreadable)."""
    return _manifest_version(root / collection.namespace / collection.name)


def missing(root: Path, pins: Sequence[Collection] = PINNED) -> list[Collection]:
    """The pinned collections not installed at their pinned version."""
    return [c for c in pins if installed_version(root, c) != c.version]


def download_bundle(folder: Path) -> Path:
    """`pip download --no-deps` of the bundle's wheel, by this interpreter's pip; the wheel's path."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            str(folder),
            BUNDLE,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        detail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise CollectionError(f"pip could not download {BUNDLE} (exit {result.returncode}): {detail}")
    wheels = sorted(folder.glob("ansible-*.whl"))
    if len(wheels) != 1:
        raise CollectionError(f"pip download {BUNDLE} left {len(wheels)} wheels in {folder}, expected one")
    return wheels[0]


def extract(wheel: Path, collection: Collection, root: Path) -> None:
    """Replace `root/<namespace>/<name>` by the collection's folder from the wheel, only if it is the pinned version.

    The files go to a staging folder first, so a refused or interrupted extraction leaves the installed one alone."""
    prefix = f"ansible_collections/{collection.namespace}/{collection.name}/"
    namespace = root / collection.namespace
    staging = namespace / f".{collection.name}.partial"
    try:
        with zipfile.ZipFile(wheel) as bundle:
            members = [m for m in bundle.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            if not members:
                raise CollectionError(f"{wheel.name} holds no {collection.fqcn}")
            shutil.rmtree(staging, ignore_errors=True)
            for member in members:
                relative = PurePosixPath(member.filename[len(prefix) :])
                if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                    raise CollectionError(f"{wheel.name}: refusing the entry {member.filename!r}")
                target = staging.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, zipfile.BadZipFile):
            raise CollectionError(f"{wheel} is not a readable wheel: {exc}") from exc
        raise
    found = _manifest_version(staging)
    if found != collection.version:
        shutil.rmtree(staging, ignore_errors=True)
        raise CollectionError(
            f"{wheel.name} holds {collection.fqcn} {found or 'without a readable MANIFEST.json'}, "
            f"pinned {collection.version}"
        )
    final = namespace / collection.name
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)


def ensure(
    root: Path | None = None, pins: Sequence[Collection] = PINNED, download: Download = download_bundle
) -> list[Collection]:
    """Install the pinned collections that are missing or at another version; the ones installed (none: nothing was
    downloaded)."""
    root = collections_root() if root is None else root
    todo = missing(root, pins)
    if not todo:
        return []
    with tempfile.TemporaryDirectory(prefix="provisioner-collections-") as folder:
        wheel = download(Path(folder))
        for collection in todo:
            extract(wheel, collection, root)
    still = missing(root, todo)
    if still:
        raise CollectionError("not installed as pinned: " + ", ".join(map(str, still)))
    return todo


def main() -> int:
    root = collections_root()
    try:
        installed = ensure(root)
    except CollectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    pins = ", ".join(map(str, PINNED))
    if installed:
        print(f"Ansible collections installed from {BUNDLE} into {root}: {', '.join(map(str, installed))}")
    else:
        print(f"Ansible collections already installed as pinned: {pins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
