"""Fresh SSH host keys for each machine, made on the controller so their public halves are known up front."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from provisioner.controller.shell import run


@dataclass(frozen=True)
class HostKey:
    private: bytes
    public: str  # "ssh-ed25519 AAAA... root@name"


def new_host_key(hostname: str) -> HostKey:
    with tempfile.TemporaryDirectory(prefix="provisioner-hostkey-") as tmp:
        path = Path(tmp) / "key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hostname}", "-f", str(path)])
        return HostKey(private=path.read_bytes(), public=Path(f"{path}.pub").read_text().strip())
