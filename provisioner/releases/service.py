"""Release operations behind `provision release`: every step checks the ledger first and records itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.ansible_run.inventory import env_group, inventory_path, role_group
from provisioner.ansible_run.runner import run_playbook
from provisioner.errors import ProvisionError, RefusedError
from provisioner.releases import artifacts, identity, rules
from provisioner.releases.history import History, Release, replay
from provisioner.releases.ledger import Ledger
from provisioner.site.load import LoadedSite
from provisioner.site.model import Host
from provisioner.site.policy import app_hosts
from provisioner.workspace.site_state import SiteState, operator

DEPLOY_PLAYBOOK = "deploy.yml"


@dataclass
class ReleaseBook:
    """The ledger of one site, checked before anything is read from it.

    Every step checks its arguments and the rules before it takes the ledger's lock, so a refused or mistyped
    step writes nothing; under the lock it checks the rules again, in case the ledger moved on meanwhile.
    """

    site: LoadedSite
    state: SiteState
    _verified: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, site: LoadedSite, state: SiteState | None = None) -> ReleaseBook:
        return cls(site, state or SiteState(site.name))

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.state)

    def history(self) -> History:
        """The releases the ledger records, once its chain, signatures and head verify (checked again only when
        the ledger's bytes changed since)."""
        ledger = self.ledger
        fingerprint = ledger.fingerprint()
        if fingerprint != self._verified:
            problems = ledger.problems()
            if problems:
                listed = "; ".join(str(p) for p in problems[:5])
                raise RefusedError(
                    f"the release ledger {ledger.path} does not verify ({listed}); nothing was changed. "
                    "Restore it from a backup: a ledger that does not verify cannot authorise a release"
                )
            self._verified = fingerprint
        return replay(ledger.entries())

    # ---- steps -----------------------------------------------------------------------------------
    def create(self, artifact_file: Path, author: str) -> dict[str, Any]:
        rules.check_author(self.site.model, author)
        artifact = artifacts.inspect(artifact_file)
        _check_new(self.history(), artifact.digest)
        with self.ledger.locked():
            history = self.history()
            _check_new(history, artifact.digest)
            artifacts.keep(self.state, artifact_file, artifact)
            return self.ledger.append(
                {
                    "event": "create",
                    "release": f"r{len(history.releases) + 1}",
                    "actor": author,
                    "digest": artifact.digest,
                    "artifact": artifact_file.name,
                    "version": artifact.version,
                    "files": artifact.files,
                }
            )

    def approve(self, release_id: str, person: str) -> dict[str, Any] | None:
        """The approval entry, or None when this person had already approved (nothing recorded twice)."""
        rules.check_release_id(release_id)
        rules.require_person(self.site.model, person)
        self._approvable(release_id, person)
        with self.ledger.locked():
            release = self._approvable(release_id, person)
            if person in release.approvers():
                return None
            return self.ledger.append(
                {"event": "approve", "release": release.id, "actor": person, "digest": release.digest}
            )

    def deploy(
        self, release_id: str, env: str, actor: str | None = None, key: str | None = None, on_event: Any = None
    ) -> dict[str, Any]:
        """Deploy as the deploy identity. `actor` (--as) names a person of the site; by default the login
        running the command is recorded."""
        model = self.site.model
        rules.check_release_id(release_id)
        rules.check_target(model, env)
        if actor is not None:
            rules.require_person(model, actor)
        private = identity.key_path(model, self.site.directory, key)
        user = identity.require_deploy_identity(model, env, private, identity.readable_key(private))
        self._deployable(release_id, env)
        hosts = self._deploy_hosts(env)
        with self.ledger.locked():
            release = self._deployable(release_id, env)
            stored = artifacts.checked_copy(self.state, release.digest)
            with identity.private_copy(private) as key_copy:
                result = run_playbook(
                    self.state,
                    DEPLOY_PLAYBOOK,
                    inventory_path(self.site),
                    purpose=f"deploy-{env}",
                    on_event=on_event,
                    limit=f"{env_group(env)}:&{role_group('app')}",
                    extravars={
                        "ansible_user": user,
                        "ansible_ssh_private_key_file": str(key_copy),
                        "ansible_become": False,
                        "deploy_release_id": release.id,
                        "deploy_release_digest": release.digest.split(":", 1)[1],
                        "deploy_release_version": release.version,
                        "deploy_artifact": str(stored),
                    },
                )
            entry = self.ledger.append(
                {
                    "event": "deploy",
                    "release": release.id,
                    "actor": actor or operator(),
                    "identity": user,
                    "digest": release.digest,
                    "env": env,
                    "hosts": sorted(h.name for h in hosts),
                    "result": "ok" if result.ok else "failed",
                    "run": str(result.run_dir),
                    "events": str(result.run_dir / "artifacts" / "job" / "job_events"),
                }
            )
        if not result.ok:
            failures = "; ".join(f"{f.host}: {f.task}: {f.message}" for f in result.failures[:5])
            raise ProvisionError(
                f"deploy of {release.id} to {env} failed ({failures}); run artifacts: {result.run_dir}"
            )
        return entry

    def _approvable(self, release_id: str, person: str) -> Release:
        release = rules.require_release(self.history(), release_id)
        rules.check_approve(self.site.model, release, person)
        return release

    def _deployable(self, release_id: str, env: str) -> Release:
        history = self.history()
        release = rules.require_release(history, release_id)
        rules.check_deploy(self.site.model, history, release, env)
        return release

    def _deploy_hosts(self, env: str) -> list[Host]:
        model = self.site.model
        hosts = app_hosts(model, env)
        if not hosts:
            raise RefusedError(f"{env} has no host with role app: there is nothing to deploy to")
        if not self.state.known_hosts.exists() or not inventory_path(self.site).exists():
            raise ProvisionError(f"site '{model.site}' has not been applied here yet: run `provision apply` first")
        return hosts

    def record_verify(self, run_dir: Path, passed: bool) -> list[dict[str, Any]]:
        """After a full verify run: one entry per environment running a release, saying whether it passed."""
        if not self.ledger.path.exists():
            return []
        with self.ledger.locked():
            history = self.history()
            recorded = []
            for env in rules.release_path(self.site.model):
                release = history.running(env)
                if release is None:
                    continue
                recorded.append(
                    self.ledger.append(
                        {
                            "event": "verify",
                            "release": release.id,
                            "actor": "provision verify",
                            "digest": release.digest,
                            "env": env,
                            "result": "ok" if passed else "failed",
                            "run": str(run_dir),
                        }
                    )
                )
            return recorded


def _check_new(history: History, digest: str) -> None:
    for release in history.releases.values():
        if release.digest == digest:
            raise RefusedError(f"this artifact ({digest}) is already release {release.id}")


def describe(release: Release, required_approvals: int) -> dict[str, Any]:
    """A release as people read it: who built it, where it ran, who approved it."""
    return {
        "release": release.id,
        "version": release.version,
        "digest": release.digest,
        "artifact": release.artifact,
        "author": release.author,
        "created": release.created,
        "approvals": release.approvals,
        "approvers": release.approvers(),
        "required_approvals": required_approvals,
        "deployments": [
            {"env": d.env, "time": d.time, "result": d.result, "actor": d.actor, "identity": d.identity, "run": d.run}
            for d in release.deployments
        ],
        "verifications": release.verifications,
    }
