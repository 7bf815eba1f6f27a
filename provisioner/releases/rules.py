"""The path to live, as rules: each returns nothing when a step is allowed and raises, saying why, when not."""

from __future__ import annotations

import re

from provisioner.errors import InputError, RefusedError, shown
from provisioner.releases.history import History, Release
from provisioner.site.model import Person, Site

APPROVER_ROLES = ("approver",)  # as `releases.required_approvals` is validated against
RELEASE_ID = re.compile(r"r[1-9][0-9]{0,8}")  # as ReleaseBook.create numbers them


def release_path(site: Site) -> list[str]:
    return list(site.releases.path)


def is_production(site: Site, env: str) -> bool:
    return site.environment(env).tier == "production"


def check_release_id(release_id: str) -> None:
    """A release id is r1, r2, ...: anything else is refused before the ledger is read."""
    if not RELEASE_ID.fullmatch(release_id):
        raise InputError(
            f"release {shown(release_id)}: not a release id; release ids are r1, r2, ... "
            "(`provision release log` lists them)"
        )


def require_release(history: History, release_id: str) -> Release:
    check_release_id(release_id)
    release = history.get(release_id)
    if release is None:
        known = ", ".join(history.releases) or "none yet"
        raise InputError(f"release {release_id} is not in the ledger; known releases: {known}")
    return release


def require_person(site: Site, name: str, option: str = "--as") -> Person:
    person = site.person(name)
    if person is None:
        known = ", ".join(p.name for p in site.people) or "none"
        raise InputError(f"{option} {shown(name)}: not a person of site '{site.site}' (people); allowed: {known}")
    return person


def check_target(site: Site, env: str) -> None:
    """The environment a deploy names must be on the release path."""
    path = release_path(site)
    if env not in path:
        raise InputError(f"--env {shown(env)}: not on the release path; allowed: {', '.join(path)} (releases.path)")


def check_deploy(site: Site, history: History, release: Release, env: str) -> None:
    check_target(site, env)
    path = release_path(site)
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
    who = require_person(site, person)
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
    require_person(site, person)
