"""Release artifacts: a .tar.gz with a VERSION file, kept by digest in the site's state.

`inspect` reads the artifact's file ONCE; the members are checked, the digest computed and the store written from
those same bytes, so a file swapped after the read changes nothing that is recorded. The members it refuses are
the ones the deploy command on the hosts refuses (roles/app/templates/usr/local/sbin/provision-deploy.j2: keep
the two in step), so a recorded release always installs.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from provisioner.errors import InputError, RefusedError, shown
from provisioner.workspace.site_state import SiteState

MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_NAME_BYTES = 1024
MAX_PART_BYTES = 255
MARKER = ".provision-release"  # written by the deploy command into every installed release
WHAT = "a release is a .tar.gz file with a VERSION file at its top"
ALLOWED = "a release holds only regular files and folders with relative names (no '..', no control characters)"


@dataclass(frozen=True)
class Artifact:
    digest: str  # "sha256:<hex>"
    version: str
    files: dict[str, str]  # relative path -> sha256 hex of each regular file
    content: bytes = field(default=b"", repr=False, compare=False)  # the bytes the digest is of

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


def read_once(path: Path) -> bytes:
    """The artifact's bytes, from one open and one read of a regular file of at most MAX_ARTIFACT_BYTES."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"--artifact {path}: no such file; {WHAT}") from None
    except OSError as exc:
        raise InputError(f"--artifact {path}: cannot be read ({exc.strerror}); {WHAT}") from None
    kind = os.fstat(handle).st_mode
    if not stat.S_ISREG(kind):
        os.close(handle)
        raise InputError(f"--artifact {path}: {'a folder' if stat.S_ISDIR(kind) else 'not a regular file'}; {WHAT}")
    with os.fdopen(handle, "rb") as opened:
        try:
            data = opened.read(MAX_ARTIFACT_BYTES + 1)
        except OSError as exc:
            raise InputError(f"--artifact {path}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_ARTIFACT_BYTES:
        raise InputError(f"--artifact {path}: larger than {MAX_ARTIFACT_BYTES} bytes; {WHAT}")
    return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse(path: Path, name: str, why: str) -> InputError:
    return InputError(f"--artifact {path}: member {shown(name)} {why}; {ALLOWED}")


def member_parts(path: Path, name: str) -> tuple[str, ...]:
    """The member name's components, once it is a name the deploy command accepts."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name):
        raise _refuse(path, name, "has a control character in its name")
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):
        raise _refuse(path, name, "has a name that is not UTF-8")
    if name.startswith("/"):
        raise _refuse(path, name, "has an absolute name")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _refuse(path, name, "has a '..' component")
    if len(name.encode()) > MAX_NAME_BYTES or any(len(p.encode()) > MAX_PART_BYTES for p in parts):
        raise _refuse(path, name, f"has a name longer than {MAX_NAME_BYTES} bytes or a component over {MAX_PART_BYTES}")
    if MARKER in parts:
        raise _refuse(path, name, f"uses the name {MARKER}, which the deploy command writes itself")
    return parts


def member_kind(path: Path, member: tarfile.TarInfo) -> str:
    """ "file" or "folder"; every other kind of member is refused, naming it."""
    if member.isreg():
        return "file"
    if member.isdir():
        return "folder"
    if member.issym():
        why = f"is a symbolic link (to {shown(member.linkname)})"
    elif member.islnk():
        why = f"is a hard link (to {shown(member.linkname)})"
    elif member.ischr() or member.isblk():
        why = "is a device node"
    elif member.isfifo():
        why = "is a FIFO"
    else:
        why = f"is not a regular file or folder (tar type {shown(member.type.decode('latin-1'))})"
    raise _refuse(path, member.name, why)


def _checked_members(path: Path, archive: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, tuple[str, ...]]]:
    """The file members, after every member was checked (kinds, names, bounds, each name once)."""
    kinds: dict[tuple[str, ...], str] = {(): "folder"}
    files: list[tuple[tarfile.TarInfo, tuple[str, ...]]] = []
    total = 0
    for count, member in enumerate(archive, start=1):
        if count > MAX_MEMBERS:
            raise InputError(f"--artifact {path}: more than {MAX_MEMBERS} members; {WHAT}")
        parts = member_parts(path, member.name)
        kind = member_kind(path, member)
        if not parts and kind == "file":
            raise _refuse(path, member.name, "is a file without a name")
        for depth in range(1, len(parts)):
            if kinds.get(parts[:depth]) == "file":
                raise _refuse(path, member.name, f"is below {shown('/'.join(parts[:depth]))}, which is a file")
            kinds.setdefault(parts[:depth], "folder")
        if parts in kinds and "file" in (kind, kinds[parts]):
            raise _refuse(path, member.name, "appears twice")
        kinds[parts] = kind
        if kind == "file":
            total += member.size
            if total > MAX_TOTAL_BYTES:
                raise InputError(f"--artifact {path}: unpacks to more than {MAX_TOTAL_BYTES} bytes; {WHAT}")
            files.append((member, parts))
    return files


def inspect(path: Path) -> Artifact:
    """Read an artifact once; refuse anything that is not a plain tree of files with a VERSION at its top."""
    data = read_once(path)
    files: dict[str, str] = {}
    version = ""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz", encoding="utf-8", errors="surrogateescape") as archive:
            for member, parts in _checked_members(path, archive):
                stream = archive.extractfile(member)
                content = stream.read() if stream else b""
                clean = str(PurePosixPath(*parts))
                files[clean] = hashlib.sha256(content).hexdigest()
                if clean == "VERSION":
                    version = content.decode(errors="replace").strip()
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise InputError(f"--artifact {path}: not a .tar.gz archive ({exc}); {WHAT}") from exc
    if "VERSION" not in files:
        raise InputError(f"--artifact {path}: the archive has no VERSION file at its top")
    if not version or len(version) > 64 or not version.isprintable():
        raise InputError(f"--artifact {path}: VERSION must hold one printable line of at most 64 characters")
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    return Artifact(digest=digest, version=version, files=dict(sorted(files.items())), content=data)


def store_dir(state: SiteState) -> Path:
    return state.root / "artifacts"


def stored_path(state: SiteState, digest: str) -> Path:
    return store_dir(state) / f"{digest.split(':', 1)[1]}.tar.gz"


def keep(state: SiteState, artifact: Artifact) -> Path:
    """Write the bytes `inspect` read and hashed into the store under their digest (deploys ship this copy,
    never the original, which is not opened again)."""
    if hashlib.sha256(artifact.content).hexdigest() != artifact.hex:
        raise RefusedError(f"the artifact's bytes are not those of {artifact.digest}: nothing recorded")
    target = stored_path(state, artifact.digest)
    if target.is_file() and sha256_file(target) == artifact.hex:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".tar.gz")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(artifact.content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
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
