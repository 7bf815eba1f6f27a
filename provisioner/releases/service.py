"""Release operations behind `provision release`: every step checks the ledger first and records itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.ansible_run.inventory import env_group, inventory_path, role_group
from provisioner.ansible_run.runner import run_playbook
from provisioner.errors import InputError, ProvisionError, RefusedError, shown
from provisioner.releases import artifacts, decisions, identity, rules
from provisioner.releases.decisions import Signing, Statement
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

    def problems(self) -> list[str]:
        """Everything wrong with the ledger: its chain, signatures and head, then every signed decision re-checked
        against the key history it records (CHG-4)."""
        chain = [str(p) for p in self.ledger.problems()]
        if chain:
            return chain
        entries = self.ledger.entries()
        return [f"entry {seq}: {why}" for seq, why in sorted(decisions.decision_problems(entries).items())]

    # ---- steps -----------------------------------------------------------------------------------
    def create(
        self, artifact_file: Path, author: str, signing: Signing | None = None, hotfix: bool = False
    ) -> dict[str, Any]:
        """Record a release, signed by its author with their own key (see `decisions`); a hotfix is marked as such
        in what the author signs."""
        model = self.site.model
        rules.check_author(model, author, hotfix)
        artifact = artifacts.inspect(artifact_file)
        _check_new(self.history(), artifact.digest)
        decision = "create-hotfix" if hotfix else "create"
        expected = Statement(model.site, decision, "new", artifact.digest, rules.release_path(model)[0], author, "")
        command = f"provision release create --site {model.site} --artifact {artifact_file} --as {author}" + (
            " --hotfix" if hotfix else ""
        )
        signed = decisions.signed_fields(model, expected, signing or Signing(), command)
        with self.ledger.locked():
            history = self.history()
            _check_new(history, artifact.digest)
            artifacts.keep(self.state, artifact)
            self._record_keys()
            return self.ledger.append(
                {
                    "event": "create",
                    "release": f"r{len(history.releases) + 1}",
                    "actor": author,
                    "digest": artifact.digest,
                    "artifact": artifact_file.name,
                    "version": artifact.version,
                    "files": artifact.files,
                    **({"hotfix": True} if hotfix else {}),
                    **signed,
                }
            )

    def _head(self) -> str:
        """COUNT:HASH of the ledger as it is now (call under the lock): each deploy leaves it on its hosts."""
        entries = self.ledger.entries()
        return f"{len(entries)}:{entries[-1]['hash']}"

    def _record_keys(self) -> None:
        """Call under the lock, before a signed decision: the people's keys join the ledger when they changed."""
        entry = decisions.keys_entry(self.site.model, self.ledger.entries())
        if entry is not None:
            self.ledger.append(entry)

    def approve(self, release_id: str, person: str, signing: Signing | None = None) -> dict[str, Any] | None:
        """The approval entry, signed by the approver with their own key; None when this person had already
        approved (nothing recorded twice)."""
        model = self.site.model
        rules.check_release_id(release_id)
        rules.require_person(model, person)
        release = self._approvable(release_id, person)
        if person in release.approvers():
            return None
        target = rules.release_path(model)[-1]
        expected = Statement(model.site, "approve", release.id, release.digest, target, person, "")
        command = f"provision release approve {release.id} --site {model.site} --as {person}"
        signed = decisions.signed_fields(model, expected, signing or Signing(), command)
        with self.ledger.locked():
            release = self._approvable(release_id, person)
            if person in release.approvers():
                return None
            self._record_keys()
            return self.ledger.append(
                {"event": "approve", "release": release.id, "actor": person, "digest": release.digest, **signed}
            )

    def approve_waiver(self, waiver_id: str, person: str, signing: Signing | None = None) -> dict[str, Any] | None:
        """The waiver's approver signs the waiver as the site file states it (ACC-7); None when that exact
        content was already signed by them."""
        model = self.site.model
        waiver = model.waiver(waiver_id)
        if waiver is None:
            known = ", ".join(w.id for w in model.waivers) or "none declared"
            raise InputError(f"waiver {shown(waiver_id)} is not in the site file; allowed: {known}")
        done = waiver.id in decisions.signed_waivers(self.ledger.entries(), model)
        return self._sign_declared("waiver-approve", waiver, waiver.environment or "-", person, signing, done,
                                   f"provision waiver approve {waiver.id}")  # fmt: skip

    def authorise_refresh(self, ref: str, person: str, signing: Signing | None = None) -> dict[str, Any] | None:
        """The authorisation's approver signs it as the site file states it (DATA-3): `data refresh` needs it."""
        model = self.site.model
        auth = model.test_data.authorisation(ref)
        if auth is None:
            known = ", ".join(a.id for a in model.test_data.authorisations) or "none declared"
            raise InputError(f"authorisation {shown(ref)} is not in test_data.authorisations; allowed: {known}")
        done = auth.id in decisions.signed_authorisations(self.ledger.entries(), model)
        return self._sign_declared("data-authorise", auth, auth.to_env, person, signing, done,
                                   f"provision data authorise {auth.id}")  # fmt: skip

    def _sign_declared(
        self, event: str, item: Any, env: str, person: str, signing: Signing | None, done: bool, command: str
    ) -> dict[str, Any] | None:
        model = self.site.model
        rules.require_person(model, person)
        if person != item.approver:
            raise RefusedError(
                f"the site file names {item.approver} as the approver of {item.id}: only they can sign it"
            )
        if done:
            return None
        digest = decisions.content_digest(item)
        expected = Statement(model.site, event, item.id, digest, env, person, "")
        signed = decisions.signed_fields(
            model, expected, signing or Signing(), f"{command} --site {model.site} --as {person}"
        )
        with self.ledger.locked():
            self.history()  # the ledger verifies before anything is added to it
            self._record_keys()
            return self.ledger.append({"event": event, "subject": item.id, "actor": person, "digest": digest, **signed})

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
                        "deploy_ledger_head": self._head(),
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
        "hotfix": release.hotfix,
        "approvals": release.approvals,
        "approvers": release.approvers(),
        "required_approvals": required_approvals,
        "deployments": [
            {"env": d.env, "time": d.time, "result": d.result, "actor": d.actor, "identity": d.identity, "run": d.run}
            for d in release.deployments
        ],
        "verifications": release.verifications,
    }
