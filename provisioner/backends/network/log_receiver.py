"""The controller's log receiver (LOG-1): production hosts upload their journal here, off the host, as it is written.

One `systemd-journal-remote` per site, listening with HTTPS on the controller's management address only, writing
one journal file per sending address (`remote-<address>.journal`) under the site's evidence folder, where a root
user on a production host cannot reach it. The file is named by the connection's source address, not by anything
the sender writes into its entries, and only the production segments may open a connection to the port (the
gateway's flow and the controller's guard table). Debian's build of the receiver cannot check client
certificates, so the network path is what admits a sender; the hosts check the receiver's certificate.

Stock tools read the copy: `journalctl --file '<folder>/remote-<address>.journal'`.

The receiver runs detached from provision (its own session); apply starts it when it is not running with the
site's exact arguments, verify reports it, destroy stops it. Its pid file and its own output sit beside the
journals' folder.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.backends.network import links
from provisioner.controller.needs import program
from provisioner.controller.shell import run, start_daemon
from provisioner.site.model import Site
from provisioner.site.policy import LOG_RECEIVER_PORT
from provisioner.workspace import log_tls
from provisioner.workspace.log_tls import CertificatePair
from provisioner.workspace.site_state import SiteState

RECEIVER = program("/lib/systemd/systemd-journal-remote").name


@dataclass(frozen=True)
class LogReceiver:
    site: str
    address: ipaddress.IPv4Address
    folder: Path  # the received journals
    tls: CertificatePair
    port: int = LOG_RECEIVER_PORT

    @property
    def pid_file(self) -> Path:
        return self.folder.parent / "log-receiver.pid"

    @property
    def output(self) -> Path:
        return self.folder.parent / "log-receiver.log"

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    def command(self) -> list[str]:
        return [
            RECEIVER,
            f"--listen-https={self.address}:{self.port}",
            f"--key={self.tls.key}",
            f"--cert={self.tls.cert}",
            "--split-mode=host",
            "--compress=yes",
            f"--output={self.folder}/",
        ]

    def journal_of(self, address: ipaddress.IPv4Address | str) -> Path:
        """The copy of one host's journal, by the address its uploads come from."""
        return self.folder / f"remote-{address}.journal"

    def entries_since(self, address: ipaddress.IPv4Address | str, since: int) -> list[dict[str, object]]:
        """The entries of one host's copy written at or after `since` (seconds since the epoch, the host's clock),
        read with journalctl; none when the copy does not exist yet."""
        path = self.journal_of(address)
        if not path.is_file():
            return []
        found = run(
            ["journalctl", "--no-pager", f"--file={path}", f"--since=@{since}", "--output=json"],
            check=False,
            timeout=60,
        )
        return journal_entries(found.stdout)

    def holds_address(self) -> bool:
        return any(a.split("/")[0] == str(self.address) for a in links.all_addresses())

    def _recorded(self) -> tuple[int, list[bytes]] | None:
        """The pid in the pid file and that process's arguments, while it lives."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return (pid, cmdline.split(b"\0")[:-1]) if not _zombie(pid) else None

    def pid(self) -> int | None:
        """The receiver's pid when it runs with exactly this site's arguments."""
        recorded = self._recorded()
        if recorded is None:
            return None
        pid, args = recorded
        return pid if args == [a.encode() for a in self.command()] else None

    def _own_pid(self) -> int | None:
        """The recorded receiver of this site, whatever its other arguments (an old address, port or certificate):
        a systemd-journal-remote writing into this site's folder. Any other process the pid file may name (the pid
        reused after a reboot) is not ours to stop."""
        recorded = self._recorded()
        if recorded is None:
            return None
        pid, args = recorded
        ours = bool(args) and args[0] == RECEIVER.encode() and f"--output={self.folder}/".encode() in args[1:]
        return pid if ours else None

    def running(self) -> bool:
        return self.pid() is not None

    def ensure(self) -> bool:
        """Start the receiver unless it runs with these arguments; True when it was started now."""
        if self.running():
            return False
        self.stop()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        pid = start_daemon(self.command(), self.output)
        self.pid_file.write_text(f"{pid}\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                break
            if _listening(self.address, self.port):
                return True
            time.sleep(0.1)
        tail = self.output.read_text(errors="replace").strip().splitlines()[-3:] if self.output.exists() else []
        raise OSError(f"the log receiver did not start on {self.url}: " + " / ".join(tail))

    def stop(self) -> None:
        """Stop this site's receiver, also one started with other arguments (apply then starts it anew)."""
        pid = self._own_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                    break
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _listening(address: ipaddress.IPv4Address, port: int) -> bool:
    """Whether a TCP socket listens on address:port (read from /proc/net/tcp, no connection made)."""
    wanted = f"{int.from_bytes(address.packed, 'little'):08X}:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)


def for_site(state: SiteState, site: Site) -> LogReceiver:
    """The site's receiver (its certificate is made by `prepare`)."""
    return LogReceiver(
        state.site, site.management.controller, state.host_logs_dir, log_tls.receiver_files(state.secrets_dir)
    )


def journal_entries(text: str) -> list[dict[str, Any]]:
    """The entries of `journalctl --output=json` output, one JSON object per line; lines that are not are skipped."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
