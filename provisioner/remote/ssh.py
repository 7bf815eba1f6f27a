"""Talking to the lab from the controller: testinfra hosts for reading state, plain SSH for attempts."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import testinfra

from provisioner.workspace.redact import Redactor
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState
from provisioner.workspace.ssh_sockets import verify_socket_name

# Runs on a lab host: opens TCP connections in parallel and says how each one ended.
REACH_SCRIPT = r"""
import concurrent.futures, errno, json, select, socket, struct, sys, time
IP_RECVERR = 11

def tcp(address, port):
    sock = socket.socket()
    sock.settimeout(3)
    try:
        sock.connect((address, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "rejected",
                errno.ENETUNREACH: "rejected"}.get(exc.errno, errno.errorcode.get(exc.errno, str(exc)))
    finally:
        sock.close()

def offender(address, port):
    # A UDP datagram with IP_RECVERR: the ICMP error names who refused it (the gateway or the host).
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
    sock.setblocking(False)
    try:
        sock.connect((address, port))
        sock.send(b"provisioner reachability probe")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            select.select([], [], [sock], 0.1)
            try:
                _, ancillary, _, _ = sock.recvmsg(64, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                continue
            for level, kind, data in ancillary:
                if level == socket.SOL_IP and kind == IP_RECVERR and len(data) >= 24:
                    return "icmp-from:" + socket.inet_ntoa(data[20:24])
        return "no-icmp"
    finally:
        sock.close()

def probe(target):
    address, port, proto = target
    return [address, port, proto, tcp(address, port) if proto == "tcp" else offender(address, port)]

with concurrent.futures.ThreadPoolExecutor(64) as pool:
    print(json.dumps(list(pool.map(probe, json.loads(sys.argv[1])))))
"""

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
        come from a host's /etc/passwd: after `--`, a name such as `-oProxyCommand=...` is no option to ssh."""
        proc = subprocess.run(
            ["ssh", "-i", str(key), *self.ssh_options, "-o", "ControlMaster=no", "-o", "ControlPath=none",
             "-o", "PreferredAuthentications=publickey", "--", f"{user}@{address}", command],
            input=stdin, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return Attempt(proc.returncode, self.redactor.text(proc.stdout), self.redactor.text(proc.stderr))

    def reach(self, source: str, targets: list[tuple[str, int]], proto: str = "tcp") -> list[tuple[str, int, str]]:
        """From lab host `source`, try each (address, port).

        tcp: connected | refused | rejected | timeout. udp: icmp-from:<address of who refused> | no-icmp.
        """
        wanted = [[address, port, proto] for address, port in targets]
        result = self.host(source).run("python3 -c %s %s", REACH_SCRIPT, json.dumps(wanted))
        if result.rc != 0:
            raise RuntimeError(f"probe from {source} failed: {result.stderr.strip()}")
        return [(address, port, outcome) for address, port, _, outcome in json.loads(result.stdout)]

    def run_as_root(self, address: str, command: str) -> Attempt:
        result = self.host(address).run(f"sudo -n {command}")
        return Attempt(result.rc, self.redactor.text(result.stdout), self.redactor.text(result.stderr))
