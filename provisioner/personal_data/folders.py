"""The data folders of a host, read as text (first bytes of each file) for the scan; binary files are skipped."""

from __future__ import annotations

import json
import shlex
import subprocess

from provisioner.errors import ProvisionError
from provisioner.site.model import Host
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState

READ_SCRIPT = r"""
import json, os, sys
limit = int(sys.argv[1])
found = []
for top in sys.argv[2:]:
    for folder, _, names in os.walk(top):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read(limit)
            except OSError:
                continue
            found.append([path, None if b"\0" in data[:4096] else data.decode("utf-8", "replace")])
print(json.dumps(found))
"""


def read_folders(state: SiteState, host: Host, folders: list[str], max_bytes: int) -> list[tuple[str, str | None]]:
    """(path, text or None for binary) of every regular file under the folders that exist on the host."""
    remote = " ".join(
        ["sudo", "-n", "python3", "-c", shlex.quote(READ_SCRIPT), str(max_bytes), *(shlex.quote(f) for f in folders)]
    )
    proc = subprocess.run(
        ["ssh", "-i", str(state.controller_identity()), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={state.known_hosts}",
         "-o", "ConnectTimeout=10", f"{AUTOMATION_USER}@{host.address}", remote],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ProvisionError(f"cannot read the data folders of {host.name} (exit {proc.returncode})")
    return [(path, text) for path, text in json.loads(proc.stdout)]
