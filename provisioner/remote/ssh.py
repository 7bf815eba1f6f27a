"""Talking to the lab from the controller: testinfra hosts for reading state, plain SSH for attempts."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import testinfra

from provisioner.remote import reach as reach_probe
from provisioner.workspace.redact import Redactor
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState
from provisioner.workspace.ssh_sockets import verify_socket_name

DROPPED_RETRY_PAUSES = (0.5, 1.0, 2.0)  # seconds before each new attempt after sshd dropped one unanswered
# A login attempt's key exchange when nothing secret crosses it: curve25519 first (OpenSSH's default before 9.0), the
# default list after it. The post-quantum hybrid OpenSSH 9 puts first costs its client ~80 ms of CPU per connection,
# ten times as much; a verify run makes dozens of fresh logins on a machine with two cores.
ATTEMPT_KEX = "^curve25519-sha256,curve25519-sha256@libssh.org"
# what ssh prints when the server closed the connection before the identification exchange (MaxStartups)
_DROPPED = re.compile(
    r"^kex_exchange_identification: (?:Connection closed by remote host|read: Connection reset)", re.M
)

OUTCOME_TEXT = {
    "connected": "connection opened",
    "refused": "connection refused (the packet reached the host; the port is closed)",
    "rejected": "rejected by a firewall (ICMP administratively prohibited: 'No route to host')",
    "timeout": "no answer (silently dropped)",
}


@dataclass
class Attempt:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def dropped_before_identification(rc: int, stderr: str) -> bool:
    """Whether ssh ended because the server closed the connection before it said who it is: no answer at all."""
    return rc == 255 and _DROPPED.search(stderr) is not None


class Remote:
    def __init__(self, state: SiteState):
        self.state = state
        self._hosts: dict[str, testinfra.host.Host] = {}
        self.redactor = Redactor(state.secret_values())

    @cached_property
    def ssh_options(self) -> list[str]:
        return [
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.state.known_hosts}", "-o", "ConnectTimeout=5",
        ]  # fmt: skip

    def host(self, address: str) -> testinfra.host.Host:
        """A testinfra host as the automation account; one persistent SSH connection per host, its socket in the
        site state's `ssh` folder (mode 0700)."""
        if address not in self._hosts:
            sockets = self.state.ssh_sockets()
            self._hosts[address] = testinfra.get_host(
                f"ssh://{AUTOMATION_USER}@{address}",
                ssh_identity_file=str(self.state.controller_identity()),
                ssh_extra_args=" ".join(self.ssh_options),
                controlpersist=120,
                # named by a short hash of the connection (ssh's %C would not fit a deep state folder)
                controlpath=str(sockets / verify_socket_name(AUTOMATION_USER, address)),
            )
        return self._hosts[address]

    def attempt_ssh(
        self, key: Path, user: str, address: str, command: str = "true", stdin: str | None = None
    ) -> Attempt:
        """A fresh SSH login with `key` as `user`, no connection sharing: exactly what a person would try. `user` may
        come from a host's /etc/passwd: after `--`, a name such as `-oProxyCommand=...` is no option to ssh.

        sshd drops connections beyond its MaxStartups before they identify themselves (many attempts at once, from
        several checks): such a drop is no answer, neither refused nor accepted, so the attempt is made again, a
        few times, after a pause; whatever sshd answers is final.

        An attempt whose stdin is empty carries nothing secret (its command is the check's own): its key exchange
        prefers curve25519 (`ATTEMPT_KEX`), which decides nothing about the login. One that sends something on stdin
        (a password) keeps OpenSSH's default order, the post-quantum hybrid first."""
        kex = [] if stdin is not None else ["-o", f"KexAlgorithms={ATTEMPT_KEX}"]
        for pause in (*DROPPED_RETRY_PAUSES, None):
            proc = subprocess.run(
                ["ssh", "-i", str(key), *self.ssh_options, "-o", "ControlMaster=no", "-o", "ControlPath=none",
                 *kex, "-o", "PreferredAuthentications=publickey", "--", f"{user}@{address}", command],
                input=stdin, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if pause is None or not dropped_before_identification(proc.returncode, proc.stderr):
                break
            time.sleep(pause)
        return Attempt(proc.returncode, self.redactor.text(proc.stdout), self.redactor.text(proc.stderr))

    def reach(self, source: str, targets: list[tuple[str, int]], proto: str = "tcp") -> list[tuple[str, int, str]]:
        """From lab host `source`, try each (address, port) once.

        tcp: connected | refused | rejected | timeout. udp: icmp-from:<address of who refused> | no-icmp.
        """
        outcomes, _ = self.reach_detailed(source, reach_probe.request([(a, p, proto) for a, p in targets]))
        silent = "timeout" if proto == "tcp" else "no-icmp"
        return [(o.address, o.port, silent if o.outcome == "no-answer" else o.outcome) for o in outcomes]

    def reach_detailed(
        self, source: str, request: dict[str, Any]
    ) -> tuple[list[reach_probe.Outcome], reach_probe.LinkV6 | None]:
        """From lab host `source`, the reachability probe's full answer (see provisioner.remote.reach)."""
        result = self.host(source).run("python3 -c %s %s", reach_probe.SCRIPT, json.dumps(request))
        if result.rc != 0:
            raise RuntimeError(f"probe from {source} failed: {result.stderr.strip()}")
        return reach_probe.parse(json.loads(result.stdout))

    def run_as_root(self, address: str, command: str) -> Attempt:
        result = self.host(address).run(f"sudo -n {command}")
        return Attempt(result.rc, self.redactor.text(result.stdout), self.redactor.text(result.stderr))
