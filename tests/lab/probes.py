"""Looking at a running lab from the controller and from inside its containers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from provisioner.backends.lxc.base_image import lxc_path
from provisioner.backends.network import links


def sh(*cmd: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=timeout)


def in_container(container: str, script: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return sh("lxc-attach", "-n", container, "--", "bash", "-c", script, timeout=timeout)


def tcp_connect(container: str, address: str, port: int) -> subprocess.CompletedProcess:
    """Open a TCP connection from inside `container`; stderr says why it failed."""
    return in_container(container, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}' && echo connected")


def site_containers(site: str) -> set[str]:
    found = set()
    root = lxc_path()
    for directory in root.iterdir():
        labels_file = directory / "provisioner.json"
        if labels_file.exists() and json.loads(labels_file.read_text()).get("site") == site:
            found.add(directory.name)
    return found


def containers_named(prefix: str) -> set[str]:
    return {p.name for p in lxc_path().iterdir() if p.name.startswith(prefix)}


def interfaces_with_prefix(prefix: str) -> list[str]:
    return [link.name for link in links.list_links() if link.name.startswith(prefix)]


def routes_via_prefix(prefix: str) -> list[str]:
    out = sh("ip", "-4", "route", "show").stdout.splitlines()
    return [line for line in out if f"dev {prefix}" in line]


def ssh(key: Path, known_hosts: Path, user: str, address: str, command: str) -> subprocess.CompletedProcess:
    return sh(
        "ssh",
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "ConnectTimeout=5",
        f"{user}@{address}",
        command,
    )
