"""What the Proxmox backend sent to the fakes during the whole test session, for the schema contract test.

Tests that drive the backend against a fake hand the fake to `keep()` when they are done with it; the
contract test (marked `contract`, so it runs last) checks every kept request against the official schemas.
The fake's own tests do not keep theirs: they send invalid requests on purpose.
Loaded as a plugin at startup (`-p pvecontract`), so one record serves the whole session, whichever
pytest-xdist worker sent the requests.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

VARIABLE = "PROVISION_PVE_CONTRACT"


def pytest_configure(config: Any) -> None:
    """On the controller, before any worker starts (workers inherit the variable): a fresh record."""
    if VARIABLE not in os.environ:
        os.environ[VARIABLE] = str(Path(tempfile.mkdtemp(prefix="pve-contract-")) / "requests.jsonl")


def _record() -> Path:
    return Path(os.environ.get(VARIABLE) or Path(tempfile.gettempdir()) / f"pve-contract-{os.getpid()}.jsonl")


def keep(fake: Any) -> int:
    """Append the fake's requests (method, concrete path, parameters); returns how many."""
    kept = 0
    with _record().open("a") as handle:
        for request in fake.requests:
            handle.write(json.dumps({"method": request.method, "path": request.path, "params": request.params}) + "\n")
            kept += 1
    return kept


def recorded() -> list[dict[str, Any]]:
    record = _record()
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
