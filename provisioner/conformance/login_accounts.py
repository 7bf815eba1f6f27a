"""Every account that can log in, whatever its uid (ACC-1, ACC-2, ACC-4).

An account's uid says nothing about whether it can log in: its shell does. A uid below 1000 with /bin/bash (made
with `useradd -r`, or by editing /etc/passwd) is as much a way in as a person's account. So the access checks
read every line of `getent passwd` and treat as a login account each one whose shell is not one of the shells
that refuse a session (nologin, false, sync). An empty shell field is /bin/sh, a login shell.

Each login account on a host must be accounted for: root, the automation account, a person allowed on the host,
the deploy identity where it deploys, or a service account the host's roles declare (the database's postgres);
anything else is named as undeclared. A second account with uid 0 is named whatever its shell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from provisioner.site import policy
from provisioner.site.model import Host, Site
from provisioner.site.vocabulary import HOST_ROLES
from provisioner.workspace.site_state import AUTOMATION_USER

NO_SESSION_SHELLS = frozenset({"nologin", "false", "sync"})  # by file name: /usr/sbin/nologin, /bin/false, ...


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    shell: str

    @property
    def can_log_in(self) -> bool:
        return self.shell.rstrip("/").rsplit("/", 1)[-1] not in NO_SESSION_SHELLS


@dataclass(frozen=True)
class Declared:
    """Who may have a login account on one host."""

    people: frozenset[str]
    deploy: str | None
    automation: str
    services: frozenset[str]

    def kind(self, name: str) -> str | None:
        """root, automation, person, deploy or service; None when the account is not declared."""
        if name == "root":
            return "root"
        if name == self.automation:
            return "automation"
        if name in self.people:
            return "person"
        if name == self.deploy:
            return "deploy"
        if name in self.services:
            return "service"
        return None


def declared_for(site: Site, host: Host) -> Declared:
    """Who may have a login account on `host`: its environment's people, the deploy identity where it deploys,
    the automation account, and the service accounts of the host's roles (root always)."""
    env = site.environment(host.environment)
    deploy = policy.deploy_for(site, env)
    return Declared(
        people=frozenset(a["name"] for a in policy.accounts_for(site, env)),
        deploy=deploy["name"] if deploy else None,
        automation=AUTOMATION_USER,
        services=frozenset(name for role in host.roles for name in HOST_ROLES[role].service_accounts),
    )


def parse_passwd(text: str) -> list[Account]:
    """The accounts of `getent passwd` (or /etc/passwd) text; lines that are not seven fields are skipped."""
    accounts = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) != 7 or not fields[2].isdigit():
            continue
        accounts.append(Account(fields[0], int(fields[2]), fields[6].strip() or "/bin/sh"))
    return accounts


def login_accounts(text: str) -> list[Account]:
    return [a for a in parse_passwd(text) if a.can_log_in]


def classify(text: str, declared: Declared) -> dict[str, str]:
    """Each login account's name -> its kind (root, automation, person, deploy, service) or 'undeclared'."""
    return {a.name: declared.kind(a.name) or "undeclared" for a in login_accounts(text)}


def account_problems(text: str, declared: Declared) -> list[str]:
    """Every login account nobody declared, and every account besides root with uid 0, by name."""
    problems = [
        f"{a.name} (uid {a.uid}, shell {a.shell}) can log in and is not declared"
        for a in login_accounts(text)
        if declared.kind(a.name) is None
    ]
    problems += [
        f"{a.name} has uid 0 (a second root), shell {a.shell}"
        for a in parse_passwd(text)
        if a.uid == 0 and a.name != "root"
    ]
    return problems


def names(accounts: Iterable[Account]) -> list[str]:
    return sorted({a.name for a in accounts})
