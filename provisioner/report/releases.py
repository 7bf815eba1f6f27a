"""A tolerant reader of the release ledger (`<state>/evidence/releases.jsonl`, written by `provision release`).

The report only reads it: per release, its digest, who created it, when it reached each environment and who
approved it. A missing or partly unreadable ledger is reported, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.releases import history
from provisioner.releases.history import replay

LEDGER_FILE = "releases.jsonl"
RELEASE_EVENTS = ("create", "deploy", "approve", "verify")  # the others: keys, waiver-approve, data-authorise


@dataclass
class Release:
    id: str
    digest: str = ""
    artifact: str = ""
    author: str = ""
    created: str = ""
    reached: dict[str, str] = field(default_factory=dict)  # env -> time of the first successful deploy
    verified: dict[str, str] = field(default_factory=dict)  # env -> time of the first successful verify
    failed: list[str] = field(default_factory=list)  # "deploy prod at <time>"
    approvals: list[dict[str, str]] = field(default_factory=list)  # actor, time
    hotfix: bool = False  # an emergency fix (releases.hotfix): listed on its own in the report

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "digest": self.digest,
            "artifact": self.artifact,
            "author": self.author,
            "created": self.created,
            "reached": self.reached,
            "verified": self.verified,
            "failed": self.failed,
            "approvals": self.approvals,
            "hotfix": self.hotfix,
        }


@dataclass
class Ledger:
    path: Path
    present: bool
    entries: list[dict[str, Any]]
    problems: list[str]
    releases: list[Release]

    @property
    def last(self) -> Release | None:
        return self.releases[-1] if self.releases else None

    @property
    def summary(self) -> str:
        if not self.present:
            return "no releases recorded"
        return f"{len(self.releases)} release(s), {len(self.entries)} ledger entries"


def read_ledger(evidence_dir: Path) -> Ledger:
    path = evidence_dir / LEDGER_FILE
    if not path.is_file():
        return Ledger(path, False, [], [], [])
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(entry, dict) or not entry.get("event"):
            problems.append(f"line {number}: no 'event'")
            continue
        if entry["event"] in RELEASE_EVENTS and not entry.get("release"):
            problems.append(f"line {number}: a {entry['event']} entry without its 'release'")
            continue
        entries.append({"time": "", **entry})
    return Ledger(path, True, entries, problems, [_summarise(r) for r in replay(entries).releases.values()])


def _summarise(release: history.Release) -> Release:
    """One release as the report shows it, from the release package's own reading of the ledger."""
    reached: dict[str, str] = {}
    for deployment in release.deployments:
        if deployment.result == "ok":
            reached.setdefault(deployment.env, deployment.time)
    verified: dict[str, str] = {}
    for verification in release.verifications:
        if verification["result"] == "ok":
            verified.setdefault(verification["env"], verification["time"])
    failed = [f"deploy {d.env} at {d.time}" for d in release.deployments if d.result != "ok"]
    failed += [f"verify {v['env']} at {v['time']}" for v in release.verifications if v["result"] != "ok"]
    return Release(
        id=release.id,
        digest=release.digest,
        artifact=release.artifact,
        author=release.author,
        created=release.created,
        hotfix=release.hotfix,
        reached=reached,
        verified=verified,
        failed=failed,
        approvals=[{"actor": a["by"], "time": a["time"]} for a in release.approvals],
    )
