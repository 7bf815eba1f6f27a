"""What the ledger says happened to each release: replayed from its entries, oldest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Deployment:
    env: str
    time: str
    actor: str
    identity: str
    result: str
    run: str
    files: dict[str, str]


@dataclass
class Release:
    id: str
    number: int
    digest: str
    artifact: str
    author: str
    created: str
    version: str
    hotfix: bool = False  # an emergency fix: its approvals may follow the production deploy (releases.hotfix)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of each file it installs
    deployments: list[Deployment] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)  # {by, time, seq}
    verifications: list[dict[str, str]] = field(default_factory=list)  # {env, time, result, run}

    def deployed(self, env: str) -> Deployment | None:
        """The last successful deployment of this release to env."""
        done = [d for d in self.deployments if d.env == env and d.result == "ok"]
        return done[-1] if done else None

    def passed_verify(self, env: str) -> dict[str, str] | None:
        """The last passing verify of env while this release ran there (after its deployment)."""
        deployed = self.deployed(env)
        if deployed is None:
            return None
        passed = [
            v for v in self.verifications if v["env"] == env and v["result"] == "ok" and v["time"] > deployed.time
        ]
        return passed[-1] if passed else None

    def approvers(self) -> list[str]:
        """Distinct approvers other than the author, in the order they approved."""
        seen: list[str] = []
        for approval in self.approvals:
            if approval["by"] != self.author and approval["by"] not in seen:
                seen.append(approval["by"])
        return seen


@dataclass
class History:
    releases: dict[str, Release]
    current: dict[str, str]  # environment -> release id running there (last successful deployment)

    def get(self, release_id: str) -> Release | None:
        return self.releases.get(release_id)

    def running(self, env: str) -> Release | None:
        rid = self.current.get(env)
        return self.releases.get(rid) if rid else None

    def latest(self) -> Release | None:
        return max(self.releases.values(), key=lambda r: r.number, default=None)


def replay(entries: list[dict[str, Any]]) -> History:
    releases: dict[str, Release] = {}
    current: dict[str, str] = {}
    for entry in entries:
        event, rid = entry.get("event"), str(entry.get("release", ""))
        if event == "create":
            releases[rid] = Release(
                id=rid,
                number=len(releases) + 1,
                digest=str(entry.get("digest", "")),
                artifact=entry.get("artifact", ""),
                author=entry.get("actor", ""),
                created=str(entry.get("time", "")),
                version=entry.get("version", ""),
                hotfix=bool(entry.get("hotfix", False)),
                files=dict(entry.get("files", {})),
            )
            continue
        release = releases.get(rid)
        if release is None:
            continue
        if event == "deploy":
            deployment = Deployment(
                env=entry.get("env", ""),
                time=str(entry.get("time", "")),
                actor=entry.get("actor", ""),
                identity=entry.get("identity", ""),
                result=entry.get("result", ""),
                run=entry.get("run", ""),
                files=dict(entry.get("files", {})),
            )
            release.deployments.append(deployment)
            if deployment.result == "ok":
                current[deployment.env] = rid
        elif event == "approve":
            release.approvals.append(
                {"by": entry.get("actor", ""), "time": str(entry.get("time", "")), "seq": entry.get("seq", 0)}
            )
        elif event == "verify":
            release.verifications.append(
                {"env": entry.get("env", ""), "time": str(entry.get("time", "")), "result": entry.get("result", ""),
                 "run": entry.get("run", "")}
            )  # fmt: skip
    return History(releases, current)
