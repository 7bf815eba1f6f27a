"""What the Proxmox backend sent to the fakes during the whole test session, for the schema contract test.

Tests that drive the backend against a fake hand the fake to `keep()` when they are done with it; the
contract test (marked `contract`, so it runs last) checks every kept request against the official schemas.
The fake's own tests do not keep theirs: they send invalid requests on purpose.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

RECORD = Path(
    os.environ.get("PROVISION_PVE_CONTRACT", Path(tempfile.gettempdir()) / f"pve-contract-{os.getpid()}.jsonl")
)


def keep(fake: Any) -> int:
    """Append the fake's requests (method, concrete path, parameters); returns how many."""
    kept = 0
    with RECORD.open("a") as handle:
        for request in fake.requests:
            handle.write(json.dumps({"method": request.method, "path": request.path, "params": request.params}) + "\n")
            kept += 1
    return kept


def recorded() -> list[dict[str, Any]]:
    if not RECORD.exists():
        return []
    return [json.loads(line) for line in RECORD.read_text().splitlines() if line.strip()]
