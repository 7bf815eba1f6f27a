"""Separation of duties (ISO/IEC 27001:2022 A.5.3, A.8.31) checked in the site file, before anything is built.

- A person holds developer or tester together with admin only under a valid ACC-7 waiver naming them.
- Every SSH key belongs to one identity: no two people share a key, and the deploy identity's key is nobody's.
- Account names that the system, the roles or the automation already use are refused.
- Waivers name a control of the catalogue; their approver holds the approver or admin role, is not the
  requester and is not a developer or tester of the environment concerned.
- The path to live starts in development, passes through every test environment and ends in production.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from provisioner.site.model import Person, Site, Waiver
from provisioner.site.sshkeys import parse_public_key
from provisioner.site.vocabulary import (
    DEFAULT_ACCESS,
    RESERVED_ACCOUNT_PREFIXES,
    RESERVED_ACCOUNTS,
    control_ids,
)
from provisioner.site.waiver_scope import scope_environments
from provisioner.site.yamlsource import KeyPath

Problem = tuple[KeyPath, str]
BUILDERS = ("developer", "tester")


def check_duties(site: Site, today: dt.date) -> Iterator[Problem]:
    yield from _role_combinations(site, today)
    yield from _keys(site)
    yield from _account_names(site)
    yield from _waivers(site)
    yield from _out_of_scope(site)
    yield from _path_to_live(site)


def _role_combinations(site: Site, today: dt.date) -> Iterator[Problem]:
    for index, person in enumerate(site.people):
        builder = [r for r in person.roles if r in BUILDERS]
        if not builder or "admin" not in person.roles:
            continue
        label = f"'{person.name}' is {' and '.join(builder)} and also admin (production sudo)"
        covering = [w for w in site.waivers if w.person == person.name and w.control == "ACC-7"]
        valid = [w for w in covering if w.expires >= today and w.approver != person.name]
        if valid:
            continue
        if covering:
            reason = f"waiver '{covering[0].id}' has expired or is approved by '{person.name}' themself"
            yield (("people", index, "roles"), f"{label}: {reason}; allowed: a valid ACC-7 waiver, or fewer roles")
        else:
            yield (
                ("people", index, "roles"),
                f"{label}: separation of duties (A.5.3) needs a waiver for ACC-7 naming '{person.name}'; "
                "allowed: developer or tester, or admin, or both under an ACC-7 waiver",
            )


def _keys(site: Site) -> Iterator[Problem]:
    owners: dict[bytes, str] = {}
    for index, person in enumerate(site.people):
        blob = parse_public_key(person.ssh_key).blob
        if blob in owners:
            yield (
                ("people", index, "ssh_key"),
                f"this key is already the key of {owners[blob]}; allowed: one key per person, so every login names "
                "its person",
            )
        owners.setdefault(blob, f"person '{person.name}'")
    if site.deploy is not None:
        blob = parse_public_key(site.deploy.ssh_key).blob
        if blob in owners:
            yield (
                ("deploy", "ssh_key"),
                f"the deploy identity's key is the key of {owners[blob]}; allowed: a key of its own that no person "
                "holds (the release process, not a person, deploys to production)",
            )


def reserved_reason(name: str) -> str | None:
    if name in RESERVED_ACCOUNTS:
        return f"'{name}' is a system, service or automation account"
    prefix = next((p for p in RESERVED_ACCOUNT_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        return f"names starting with '{prefix}' belong to the system or to the kit's access groups"
    return None


def _account_names(site: Site) -> Iterator[Problem]:
    allowed = "a personal name not used by the system, such as 'alice' or 'a.archer'"
    for index, person in enumerate(site.people):
        reason = reserved_reason(person.name)
        if reason:
            yield (("people", index, "name"), f"{reason}; allowed: {allowed}")
    if site.deploy is not None:
        reason = reserved_reason(site.deploy.name)
        if reason:
            yield (("deploy", "name"), f"{reason}; allowed: a name of its own, such as 'deploy'")


def _developers_of(site: Site, env_name: str | None) -> set[str]:
    """People with a developer or tester role who can get into `env_name` (any environment when None)."""
    tiers = {e.name: e.tier for e in site.environments}
    found = set()
    for person in site.people:
        for role in person.roles:
            if role not in BUILDERS:
                continue
            reach = [t for env, t in tiers.items() if env_name in (None, env)]
            granted = any(g.environment == env_name or env_name is None for g in person.access)
            if granted or any(DEFAULT_ACCESS[role][t] != "none" for t in reach):
                found.add(person.name)
    return found


def _waivers(site: Site) -> Iterator[Problem]:
    controls = control_ids()
    for index, waiver in enumerate(site.waivers):
        path: KeyPath = ("waivers", index)
        if waiver.control not in controls:
            yield (
                (*path, "control"),
                f"'{waiver.control}' is not a control of the catalogue; allowed: {', '.join(controls)}",
            )
        yield from _waiver_approver(site, waiver, path)


def _out_of_scope(site: Site) -> Iterator[Problem]:
    controls = control_ids()
    seen: set[str] = set()
    for index, entry in enumerate(site.out_of_scope):
        path: KeyPath = ("out_of_scope", index)
        if entry.control not in controls:
            yield (
                (*path, "control"),
                f"'{entry.control}' is not a control of the catalogue; allowed: {', '.join(controls)}",
            )
        elif entry.control in seen:
            yield ((*path, "control"), f"{entry.control} is declared out of scope twice; allowed: once per control")
        seen.add(entry.control)
        decider = site.person(entry.decided_by)
        if decider is None:
            known = ", ".join(p.name for p in site.people) or "none declared"
            yield ((*path, "decided_by"), f"'{entry.decided_by}' is not a person of the site; allowed: {known}")
        elif not {"admin", "approver"} & set(decider.roles):
            yield (
                (*path, "decided_by"),
                f"'{decider.name}' ({', '.join(decider.roles)}) cannot take a check out of scope; allowed: a person "
                "with the admin or approver role",
            )


def _waiver_approver(site: Site, waiver: Waiver, path: KeyPath) -> Iterator[Problem]:
    approver: Person | None = site.person(waiver.approver)
    if approver is None:
        return  # named as unknown by the people checks
    allowed = "a person with the approver or admin role who is neither the requester nor a developer or tester there"
    if approver.name == waiver.person:
        yield ((*path, "approver"), f"'{approver.name}' is the person this waiver is for; allowed: {allowed}")
    elif not {"approver", "admin"} & set(approver.roles):
        yield (
            (*path, "approver"),
            f"'{approver.name}' has neither the approver nor the admin role; allowed: {allowed}",
        )
    else:
        concerned: list[str | None] = [*scope_environments(site, waiver)] or [None]  # none named: the whole site
        for env in concerned:
            if approver.name in _developers_of(site, env):
                where = f"environment '{env}'" if env else "this site"
                yield (
                    (*path, "approver"),
                    f"'{approver.name}' is a developer or tester of {where} and cannot approve its exceptions; "
                    f"allowed: {allowed}",
                )
                break


def _path_to_live(site: Site) -> Iterator[Problem]:
    envs = {e.name: e for e in site.environments}
    path = site.releases.path
    stages = [envs[name] for name in path if name in envs]
    if len(stages) != len(path):
        return  # unknown names are reported by the release-path checks
    first, last = stages[0], stages[-1]
    if first.tier != "development":
        yield (
            ("releases", "path", 0),
            f"the path to live starts in '{first.name}' ({first.tier}); allowed: a development environment first",
        )
    if last.tier != "production":
        yield (
            ("releases", "path", len(path) - 1),
            f"the path to live ends in '{last.name}' ({last.tier}); allowed: a production environment last",
        )
    if not any(stage.tier == "test" for stage in stages):
        yield (
            ("releases", "path"),
            "the path to live has no test environment; allowed: development -> test -> production (CHG-1)",
        )
    for env in site.environments:
        if env.tier == "test" and env.name not in path:
            yield (
                ("releases", "path"),
                f"test environment '{env.name}' is not on the path to live; allowed: a path through every test "
                f"environment ({', '.join(e.name for e in site.environments if e.tier == 'test')})",
            )
