"""The access matrix, read from the hosts and the hypervisor (not from the site file).

For every host, as root over SSH: local accounts (uid >= 1000), their authorized keys (in the files sshd's
effective AuthorizedKeysFile names), groups, login shell, sshd's effective AllowGroups and `sudo -l -U`. From
these each account's level on the host follows: none, login, deploy (sudo limited to named commands) or sudo
(any command). The matrix is person by environment with the highest level held on any host of the environment,
plus the hypervisor's roles where the backend has hypervisor accounts. Beside it, from the site file, the networks
each environment's hosts accept SSH from: the management network and the access networks (people's workstations)
that reach it — what NET-2 and NET-3 attempt and read on the live systems.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from provisioner.site.model import Site
from provisioner.site.policy import access_networks_reaching

LEVELS = ("none", "login", "deploy", "sudo")

# Runs as root on a host: prints what decides who may log in and who may use sudo.
READ_ACCOUNTS_SCRIPT = r"""
import grp, json, os, pwd, subprocess
allow = []
key_files = [".ssh/authorized_keys", ".ssh/authorized_keys2"]  # sshd's default
for line in subprocess.run(["sshd", "-T"], capture_output=True, text=True).stdout.splitlines():
    key, _, value = line.partition(" ")
    if key == "allowgroups":
        allow += value.split()
    elif key == "authorizedkeysfile":
        key_files = value.split()

def key_file(pattern, pw):
    # sshd's tokens in AuthorizedKeysFile; a relative path is relative to the home
    path = pattern.replace("%%", "\0").replace("%u", pw.pw_name).replace("%h", pw.pw_dir)
    path = path.replace("%U", str(pw.pw_uid)).replace("\0", "%")
    return path if path.startswith("/") else os.path.join(pw.pw_dir, path)

accounts = []
for pw in pwd.getpwall():
    if pw.pw_uid < 1000 or pw.pw_uid >= 65534:
        continue
    keys = 0
    for pattern in key_files:  # the files sshd reads for this account
        try:
            with open(key_file(pattern, pw)) as handle:
                keys += sum(1 for line in handle if line.strip() and not line.lstrip().startswith("#"))
        except OSError:
            pass
    groups = {g.gr_name for g in grp.getgrall() if pw.pw_name in g.gr_mem}
    try:
        groups.add(grp.getgrgid(pw.pw_gid).gr_name)
    except KeyError:
        pass
    sudo = subprocess.run(["sudo", "-n", "-l", "-U", pw.pw_name], capture_output=True, text=True).stdout
    accounts.append({"user": pw.pw_name, "uid": pw.pw_uid, "shell": pw.pw_shell, "keys": keys,
                     "groups": sorted(groups), "sudo": sudo})
print(json.dumps({"allowgroups": allow, "accounts": accounts}))
"""


@dataclass
class HostAccess:
    user: str
    level: str
    detail: str


@dataclass
class AccessMatrix:
    environments: list[str]
    people: list[str]  # site people first, then accounts found on hosts that the site file does not name
    cells: dict[str, dict[str, str]]  # person -> env -> level
    hypervisor: dict[str, dict[str, list[str]]]  # person -> env -> roles (empty when no hypervisor accounts)
    hypervisor_read: bool
    per_host: dict[str, list[HostAccess]] = field(default_factory=dict)  # host -> accounts
    unreadable: dict[str, str] = field(default_factory=dict)  # host -> why it could not be read
    undeclared: list[str] = field(default_factory=list)
    automation: str = "provision"
    ssh_from: dict[str, list[str]] = field(default_factory=dict)  # env -> networks its hosts accept SSH from

    def as_dict(self) -> dict[str, Any]:
        return {
            "environments": self.environments,
            "people": self.people,
            "levels": self.cells,
            "hypervisor": self.hypervisor if self.hypervisor_read else None,
            "hosts": {h: [a.__dict__ for a in accounts] for h, accounts in self.per_host.items()},
            "unreadable": self.unreadable,
            "undeclared_accounts": self.undeclared,
            "automation_account": self.automation,
            "ssh_from": self.ssh_from,
        }


def sudo_commands(sudo_listing: str) -> list[str]:
    """The command specs of `sudo -l -U user` output ('(ALL) NOPASSWD: ALL' → 'ALL')."""
    commands: list[str] = []
    listing = False
    for line in sudo_listing.splitlines():
        if "may run the following commands" in line:
            listing = True
            continue
        if listing and line.startswith((" ", "\t")) and line.strip().startswith("("):
            spec = line.strip().split(")", 1)[1].strip()
            for tag in ("NOPASSWD:", "PASSWD:", "SETENV:", "NOEXEC:"):
                spec = spec.replace(tag, "")
            commands += [c.strip() for c in spec.split(",") if c.strip()]
    return commands


def account_level(account: dict[str, Any], allowgroups: list[str]) -> HostAccess:
    user = str(account["user"])
    shell = str(account.get("shell", ""))
    groups = set(account.get("groups", []))
    reasons: list[str] = []
    can_login = True
    if not account.get("keys"):
        can_login, reasons = False, [*reasons, "no authorized key"]
    if shell.endswith(("nologin", "false")):
        can_login, reasons = False, [*reasons, f"shell {shell}"]
    if allowgroups and not groups & set(allowgroups):
        can_login, reasons = False, [*reasons, "not in sshd AllowGroups"]
    commands = sudo_commands(str(account.get("sudo", "")))
    if not can_login:
        return HostAccess(user, "none", "; ".join(reasons))
    if "ALL" in commands:
        return HostAccess(user, "sudo", f"{account['keys']} key(s); sudo: any command")
    if commands:
        return HostAccess(user, "deploy", f"{account['keys']} key(s); sudo only: {', '.join(commands)}")
    return HostAccess(user, "login", f"{account['keys']} key(s); no sudo")


def host_access(reading: dict[str, Any]) -> list[HostAccess]:
    allow = list(reading.get("allowgroups", []))
    return [account_level(a, allow) for a in reading.get("accounts", [])]


def build_matrix(
    site: Site,
    readings: dict[str, dict[str, Any]],
    unreadable: dict[str, str],
    hypervisor_rows: list[dict[str, Any]] | None,
    automation_user: str = "provision",
) -> AccessMatrix:
    """readings: host name -> what READ_ACCOUNTS_SCRIPT printed on it."""
    envs = [e.name for e in site.environments]
    env_of = {h.name: h.environment for h in site.hosts}
    declared = [p.name for p in site.people] + ([site.deploy.name] if site.deploy else [])
    per_host = {host: host_access(reading) for host, reading in readings.items()}
    on_hosts = {a.user for accounts in per_host.values() for a in accounts}
    found = sorted(on_hosts - set(declared) - {automation_user})
    # the controller's automation account administers every host: listed, but it is no person
    people = declared + ([automation_user] if automation_user in on_hosts else []) + found
    cells: dict[str, dict[str, str]] = {p: dict.fromkeys(envs, "none") for p in people}
    for host, accounts in per_host.items():
        env = env_of.get(host)
        if env is None:
            continue
        for account in accounts:
            if account.user not in cells:
                continue
            if LEVELS.index(account.level) > LEVELS.index(cells[account.user][env]):
                cells[account.user][env] = account.level
    hypervisor: dict[str, dict[str, list[str]]] = {}
    for row in hypervisor_rows or []:
        hypervisor.setdefault(str(row["person"]), {})[str(row["environment"])] = list(row.get("roles", []))
    return AccessMatrix(
        environments=envs,
        people=people,
        cells=cells,
        hypervisor=hypervisor,
        hypervisor_read=hypervisor_rows is not None,
        per_host=per_host,
        unreadable=unreadable,
        undeclared=[u for u in found if any(cells[u][e] != "none" for e in envs)],
        automation=automation_user,
        ssh_from=ssh_networks(site),
    )


def ssh_networks(site: Site) -> dict[str, list[str]]:
    """Per environment, the networks its hosts accept SSH from: management (the controller and the admins), then
    each access network that reaches it, marked where only admins sit there."""
    found = {}
    for env in site.environments:
        networks = [f"management {site.management.cidr}"]
        for network in access_networks_reaching(site, env.name):
            who = " (admins only)" if network.admins_only else ""
            networks.append(f"access network {network.name} {network.cidr}{who}")
        found[env.name] = networks
    return found


def read_host(remote: Any, address: str) -> dict[str, Any]:
    """Run the reading script as root on one host (a provisioner.remote.ssh.Remote)."""
    result = remote.host(address).run("sudo -n python3 -c %s", READ_ACCOUNTS_SCRIPT)
    if result.rc != 0:
        raise RuntimeError(result.stderr.strip() or f"exit {result.rc}")
    return json.loads(result.stdout)
