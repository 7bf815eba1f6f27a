"""The controller's per-site state: its SSH identity, known host keys, run folders, and a lock."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from provisioner.controller.shell import run
from provisioner.errors import ProvisionError
from provisioner.paths import site_state_dir
from provisioner.workspace.files import write_atomic
from provisioner.workspace.keyfiles import checked_controller_key
from provisioner.workspace.ssh_sockets import close_masters, ensure_socket_folder

AUTOMATION_USER = "provision"


def ensure_key_pair(private: Path, comment: str) -> str:
    """An ed25519 key pair at `private` (and `.pub`), made once and atomically; returns the public line. The private
    half is checked (mode 0600 or stricter, this user's) on every call: a key others could read is refused."""
    if not private.exists():
        tmp = private.with_suffix(".tmp")
        for leftover in (tmp, Path(f"{tmp}.pub")):
            leftover.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(tmp)])
        os.replace(f"{tmp}.pub", f"{private}.pub")
        os.replace(tmp, private)
    checked_controller_key(private, f"the private key of {comment}")
    return Path(f"{private}.pub").read_text().strip()


def operator() -> str:
    """Who runs this command, as recorded in evidence: the person behind sudo where there is one."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


class SiteState:
    """The controller's folder for one site (by default .provision/<site>/ in the checkout)."""

    def __init__(self, site: str, root: Path | None = None):
        self.site = site
        self.root = root or site_state_dir(site)
        self.keys_dir = self.root / "keys"
        self.controller_key = self.keys_dir / "controller_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.runs_dir = self.root / "runs"
        self.ansible_cfg = self.root / "ansible.cfg"
        self.secrets_dir = self.root / "secrets"
        # a resource whose labels cannot be written in the same step that creates it is journalled here first,
        # so an interruption in between leaves a record, not an unlabelled orphan
        self.journal_dir = self.root / "creating"
        # release ledger, data records, reports, and the evidence signing key: they outlive a destroy
        self.evidence_dir = self.root / "evidence"
        self.signing_dir = self.root / "signing"
        # the production hosts' journals as the controller's log receiver got them (LOG-1): they outlive a destroy
        self.host_logs_dir = self.evidence_dir / "host-logs"
        # SSH connection masters' sockets (Ansible's and the conformance checks'): mode 0700, never under /tmp
        self.ssh_dir = self.root / "ssh"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keys_dir.mkdir(exist_ok=True, mode=0o700)
        self.runs_dir.mkdir(exist_ok=True)

    def ssh_sockets(self) -> Path:
        """The folder for SSH connection sockets, checked (a real folder of ours, mode 0700, short enough for a
        socket path) and created when missing."""
        self.ensure()
        return ensure_socket_folder(self.ssh_dir)

    def controller_identity(self) -> Path:
        """The controller's private SSH key for the site, checked before each use: mode 0600 or stricter, owned by
        whoever runs provision (refused otherwise, naming the file and its mode)."""
        return checked_controller_key(self.controller_key, f"the controller's SSH key of site '{self.site}'")

    def controller_public_key(self) -> str:
        """The controller's SSH public key; the key pair is created on first use, private half mode 0600."""
        self.ensure()
        return ensure_key_pair(self.controller_key, f"provisioner@{self.site}")

    def write_known_hosts(self, entries: dict[str, str]) -> None:
        """address -> host public key line ('ssh-ed25519 AAAA...')."""
        self.ensure()
        text = "".join(f"{addr} {key}\n" for addr, key in sorted(entries.items()))
        write_atomic(self.known_hosts, text)

    def secret_values(self) -> list[str]:
        """Every secret the controller holds for the site, so run output can be masked."""
        values = []
        for folder in (self.keys_dir, self.secrets_dir, self.signing_dir):
            for path in sorted(folder.glob("*")) if folder.is_dir() else []:
                if path.is_file() and not path.name.endswith(".pub"):
                    text = path.read_text(errors="ignore").strip()
                    values.append(text)
                    values.extend(line for line in text.splitlines() if len(line) >= 16 and "PRIVATE KEY" not in line)
        return values

    # ---- journal of resources being created -----------------------------------------------------
    def journal_add(self, resource: str) -> None:
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        (self.journal_dir / resource).touch()

    def journal_done(self, resource: str) -> None:
        (self.journal_dir / resource).unlink(missing_ok=True)

    def journal(self) -> list[str]:
        return sorted(p.name for p in self.journal_dir.iterdir()) if self.journal_dir.is_dir() else []

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One apply/destroy per site at a time; the lock dies with the process (SIGKILL included)."""
        self.ensure()
        with open(self.root / "lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ProvisionError(f"another provision run holds the lock of site '{self.site}'") from exc
            yield

    def forget_lab(self) -> None:
        """After a full destroy: keys and known hosts go; run folders stay as change evidence."""
        close_masters(self.ssh_dir)
        shutil.rmtree(self.keys_dir, ignore_errors=True)
        shutil.rmtree(self.secrets_dir, ignore_errors=True)
        shutil.rmtree(self.journal_dir, ignore_errors=True)
        self.known_hosts.unlink(missing_ok=True)
        self.ansible_cfg.unlink(missing_ok=True)
        (self.root / "lock").unlink(missing_ok=True)
