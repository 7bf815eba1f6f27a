"""LXC containers as overlay clones of the base image, labelled so they can be found again."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from provisioner.shell import run

LABELS_FILE = "provisioner.json"


@dataclass(frozen=True)
class SeedFile:
    """A file placed in the clone's overlay before its first start."""

    path: str  # absolute path inside the container
    content: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    kind: str = "file"  # "file", "dir" (content ignored) or "symlink" (content is the target)


@dataclass
class Container:
    name: str
    directory: Path
    labels: dict[str, str]

    @property
    def complete(self) -> bool:
        return self.labels.get("state") == "ready" and (self.directory / "config").is_file()


def read_labels(directory: Path) -> dict[str, str] | None:
    try:
        return json.loads((directory / LABELS_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_labels(directory: Path, labels: dict[str, str]) -> None:
    tmp = directory / f".{LABELS_FILE}.tmp"
    tmp.write_text(json.dumps(labels, indent=1, sort_keys=True))
    os.replace(tmp, directory / LABELS_FILE)


def list_site_containers(lxcpath: Path, site: str) -> list[Container]:
    found = []
    for directory in sorted(lxcpath.iterdir()) if lxcpath.is_dir() else []:
        labels = read_labels(directory)
        if labels and labels.get("site") == site and labels.get("managed-by") == "provisioner":
            found.append(Container(directory.name, directory, labels))
    return found


def running_names() -> set[str]:
    return set(run(["lxc-ls", "--running", "-1"]).stdout.split())


def _mirror_dirs(base_rootfs: Path, delta: Path, inner_dir: str) -> Path:
    """Create inner_dir in the overlay upper layer with the base's owner and mode, parent by parent."""
    target = delta
    for part in Path(inner_dir).relative_to("/").parts:
        target = target / part
        base_dir = base_rootfs / target.relative_to(delta)
        if not target.exists():
            target.mkdir()
            if base_dir.is_dir():
                st = base_dir.stat()
                os.chown(target, st.st_uid, st.st_gid)
                target.chmod(stat.S_IMODE(st.st_mode))
    return target


def create_clone(
    lxcpath: Path, name: str, base_rootfs: Path, labels: dict[str, str], config: str, files: list[SeedFile]
) -> None:
    """Labels first (state=building), then the overlay seed, then the config, then state=ready.

    Whatever point an interruption hits, the directory is found again by its labels and replaced.
    """
    directory = lxcpath / name
    directory.mkdir(mode=0o770)
    write_labels(directory, {**labels, "state": "building"})
    delta = directory / "overlay" / "delta"
    delta.mkdir(parents=True)
    for seed in files:
        parent = _mirror_dirs(base_rootfs, delta, str(Path(seed.path).parent))
        target = parent / Path(seed.path).name
        if seed.kind == "symlink":
            target.symlink_to(seed.content.decode())
            continue
        if seed.kind == "dir":
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(seed.content)
        os.chown(target, seed.uid, seed.gid)
        target.chmod(seed.mode)
    write_config(directory, config)
    write_labels(directory, {**labels, "state": "ready"})


def write_config(directory: Path, config: str) -> None:
    tmp = directory / ".config.tmp"
    tmp.write_text(config)
    os.replace(tmp, directory / "config")


def start(name: str) -> None:
    run(["lxc-start", "-n", name, "-d"], timeout=60)


def stop(name: str, kill: bool = False) -> None:
    run(["lxc-stop", "-n", name, *(["-k"] if kill else ["-t", "20"])], check=False, timeout=60)


def remove(lxcpath: Path, name: str, running: bool) -> None:
    if running:
        stop(name, kill=True)
    shutil.rmtree(lxcpath / name, ignore_errors=True)


def user_ids(base_rootfs: Path, user: str) -> tuple[int, int]:
    for line in (base_rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(user)
