"""Release artifacts: a .tar.gz with a VERSION file, kept by digest in the site's state."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from provisioner.errors import InputError, RefusedError
from provisioner.workspace.site_state import SiteState

MAX_FILES = 10_000
WHAT = "a release is a .tar.gz file with a VERSION file at its top"


@dataclass(frozen=True)
class Artifact:
    digest: str  # "sha256:<hex>"
    version: str
    files: dict[str, str]  # relative path -> sha256 hex of each regular file

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


def _check_readable_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"--artifact {path}: a folder; {WHAT}")
    if not path.exists():
        raise InputError(f"--artifact {path}: no such file; {WHAT}")
    if not path.is_file():
        raise InputError(f"--artifact {path}: not a regular file; {WHAT}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"--artifact {path}: cannot be read ({exc.strerror})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect(path: Path) -> Artifact:
    """Read an artifact; refuse anything that is not a plain tree of files with a VERSION at its top."""
    _check_readable_file(path)
    files: dict[str, str] = {}
    version = ""
    try:
        archive = tarfile.open(path, "r:gz")  # noqa: SIM115 - closed by the with below; open errors named first
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"--artifact {path}: not a .tar.gz archive ({exc}); {WHAT}") from exc
    with archive:
        for member in archive:
            name = PurePosixPath(member.name)
            clean = PurePosixPath(*[p for p in name.parts if p != "."])
            if name.is_absolute() or ".." in name.parts:
                raise InputError(f"--artifact {path}: member '{member.name}' leaves the release folder")
            if member.isdir():
                continue
            if not member.isfile():
                raise InputError(f"--artifact {path}: member '{member.name}' is not a regular file or folder")
            if len(files) >= MAX_FILES:
                raise InputError(f"--artifact {path}: more than {MAX_FILES} files")
            data = archive.extractfile(member)
            content = data.read() if data else b""
            files[str(clean)] = hashlib.sha256(content).hexdigest()
            if str(clean) == "VERSION":
                version = content.decode(errors="replace").strip()
    if "VERSION" not in files:
        raise InputError(f"--artifact {path}: the archive has no VERSION file at its top")
    if not version or len(version) > 64 or not version.isprintable():
        raise InputError(f"--artifact {path}: VERSION must hold one printable line of at most 64 characters")
    return Artifact(digest=f"sha256:{sha256_file(path)}", version=version, files=dict(sorted(files.items())))


def store_dir(state: SiteState) -> Path:
    return state.root / "artifacts"


def stored_path(state: SiteState, digest: str) -> Path:
    return store_dir(state) / f"{digest.split(':', 1)[1]}.tar.gz"


def keep(state: SiteState, path: Path, artifact: Artifact) -> Path:
    """Copy the artifact into the store under its digest (deploys ship this copy, never the original)."""
    target = stored_path(state, artifact.digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(path, tmp)
        if sha256_file(tmp) != artifact.hex:
            tmp.unlink()
            raise InputError(f"--artifact {path}: the file changed while it was being recorded")
        tmp.replace(target)
    return target


def checked_copy(state: SiteState, digest: str) -> Path:
    """The stored artifact, after proving it still has the digest the ledger recorded."""
    target = stored_path(state, digest)
    if not target.exists():
        raise RefusedError(f"the artifact {digest} is missing from {store_dir(state)}")
    actual = f"sha256:{sha256_file(target)}"
    if actual != digest:
        raise RefusedError(f"the stored artifact {target} has digest {actual}, not {digest} as recorded: not deploying")
    return target
