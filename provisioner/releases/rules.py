"""The path to live, as rules: each returns nothing when a step is allowed and raises, saying why, when not."""

from __future__ import annotations

from provisioner.errors import InputError, RefusedError
from provisioner.releases.history import History, Release
from provisioner.site.model import Site

APPROVER_ROLES = ("approver",)  # as `releases.required_approvals` is validated against


def release_path(site: Site) -> list[str]:
    return list(site.releases.path)


def is_production(site: Site, env: str) -> bool:
    return site.environment(env).tier == "production"


def require_release(history: History, release_id: str) -> Release:
    release = history.get(release_id)
    if release is None:
        known = ", ".join(history.releases) or "none yet"
        raise InputError(f"release '{release_id}' is not in the ledger; known releases: {known}")
    return release


def check_deploy(site: Site, history: History, release: Release, env: str) -> None:
    path = release_path(site)
    if env not in path:
        raise InputError(f"--env {env}: not on the release path; allowed: {', '.join(path)} (releases.path)")
    position = path.index(env)
    for later in path[position + 1 :]:
        if release.deployed(later) is not None:
            raise RefusedError(
                f"release {release.id} already reached {later}; nothing moves backwards on the path "
                f"{' -> '.join(path)}: create a new release instead"
            )
    running = history.running(env)
    if running is not None and running.number > release.number:
        raise RefusedError(
            f"{env} runs {running.id}, which is newer than {release.id}; nothing moves backwards: "
            "to undo a change, create a new release with the old artifact's content"
        )
    if position == 0:
        return
    before = path[position - 1]
    if release.deployed(before) is None:
        raise RefusedError(
            f"release {release.id} has not run in {before}: a release reaches {env} only after it ran in {before}"
        )
    if not is_production(site, env):
        return
    if release.passed_verify(before) is None:
        raise RefusedError(
            f"release {release.id} ({release.digest}) has not passed `provision verify` in {before} since it was "
            f"deployed there: production takes only the digest that passed {before}"
        )
    required = site.releases.required_approvals
    approvers = release.approvers()
    if len(approvers) < required:
        raise RefusedError(
            f"release {release.id} needs {required} approval(s) from someone other than its author "
            f"{release.author} before {env}; it has {len(approvers)}"
            + (f" ({', '.join(approvers)})" if approvers else "")
        )


def check_approve(site: Site, release: Release, person: str) -> None:
    who = site.person(person)
    if who is None:
        known = ", ".join(p.name for p in site.people) or "none"
        raise InputError(f"--as {person}: not a person of site '{site.site}' (people); allowed: {known}")
    if person == release.author:
        raise RefusedError(
            f"{person} is the author of release {release.id} and cannot approve it: "
            "approvals must come from someone else (four-eyes)"
        )
    if not set(who.roles) & set(APPROVER_ROLES):
        raise RefusedError(
            f"{person} has the roles {', '.join(who.roles)}; approving a release needs the role approver"
        )


def check_author(site: Site, person: str) -> None:
    if site.person(person) is None:
        known = ", ".join(p.name for p in site.people) or "none"
        raise InputError(f"--as {person}: not a person of site '{site.site}' (people); allowed: {known}")
