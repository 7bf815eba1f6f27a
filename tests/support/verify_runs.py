"""Verify run folders as `provision verify` leaves them: results.json written and signed with the site's evidence
key by the library's own code (conformance.signed_results.write_signed), so tests that need a run do not hand-roll
one that `provision report` would refuse."""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from provisioner.conformance.signed_results import SignedRun, write_signed
from provisioner.workspace.site_state import SiteState

RUN = "20261124T060000Z-verify-abc123"


def write_run(state: SiteState, payload: dict[str, Any], name: str = RUN) -> SignedRun:
    """A verify run folder `name` under the site's runs, holding `payload` as signed results."""
    state.ensure()
    folder = state.runs_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    return write_signed(state, folder, copy.deepcopy(payload))


@functools.cache
def shared_state() -> SiteState:
    """One site state (with its evidence key) for the tests that only need some signed run to build a report."""
    root = Path(tempfile.mkdtemp(prefix="provision-tests-runs-"))
    atexit.register(shutil.rmtree, root, True)
    return SiteState("example", root / "example")
