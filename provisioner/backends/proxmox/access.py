"""Access at the hypervisor (ACC-6): a Proxmox group per people role, ACLs on the environments' pools and VNets.

The levels of the site's access matrix map onto Proxmox's built-in roles:
  sudo  -> PVEVMUser on /pool/<site>-<env> (console, power, cloud-init) and PVESDNUser on the env's VNet
  login -> PVEAuditor on /pool/<site>-<env> (read only)
  none  -> nothing; in particular developers hold no privilege on production.
Role defaults are granted to the role's group; a person's own grants (with their waivers) to the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioner.backends.proxmox.names import Names
from provisioner.planning.desired import MGMT
from provisioner.site.model import Site
from provisioner.site.vocabulary import DEFAULT_ACCESS, LEVEL_ORDER

LEVEL_ROLES = {"sudo": ("PVEVMUser",), "login": ("PVEAuditor",)}
SDN_ROLE = "PVESDNUser"
INFRA_ROLES = {"admin": "PVEVMUser"}  # the gateway: only admins may touch it


@dataclass(frozen=True, order=True)
class Acl:
    path: str
    role: str
    kind: str  # group | user
    ugid: str

    def params(self) -> dict[str, Any]:
        who = {"groups": self.ugid} if self.kind == "group" else {"users": self.ugid}
        return {"path": self.path, "roles": self.role, "propagate": 1, **who}


@dataclass(frozen=True)
class AccessDesign:
    groups: dict[str, str]  # groupid -> comment
    users: dict[str, set[str]]  # userid -> the site's groups it belongs to
    acls: set[Acl]


def userid(site: Site, person: str) -> str:
    realm = getattr(site.backend, "realm", "pve")
    return f"{person}@{realm}"


def design(site: Site, names: Names) -> AccessDesign:
    roles_present = sorted({role for p in site.people for role in p.roles})
    groups = {names.group(role): names.comment(role=role) for role in roles_present}
    users = {userid(site, p.name): {names.group(r) for r in p.roles} for p in site.people}
    acls: set[Acl] = set()
    for env in site.environments:
        pool = f"/pool/{names.pool(env.name)}"
        vnet = f"/sdn/zones/{names.zone}/{names.vnet(env.name)}"
        for role in roles_present:
            level = DEFAULT_ACCESS[role][env.tier]
            for pve_role in LEVEL_ROLES.get(level, ()):
                acls.add(Acl(pool, pve_role, "group", names.group(role)))
            if level == "sudo":
                acls.add(Acl(vnet, SDN_ROLE, "group", names.group(role)))
        for person in site.people:
            role_level = max((DEFAULT_ACCESS[r][env.tier] for r in person.roles), key=LEVEL_ORDER.__getitem__)
            for grant in person.access:
                if grant.environment == env.name and LEVEL_ORDER[grant.level] > LEVEL_ORDER[role_level]:
                    for pve_role in LEVEL_ROLES[grant.level]:
                        acls.add(Acl(pool, pve_role, "user", userid(site, person.name)))
    for infra_role, pve_role in INFRA_ROLES.items():
        if infra_role in roles_present:
            acls.add(Acl(f"/pool/{names.pool(None)}", pve_role, "group", names.group(infra_role)))
            acls.add(Acl(f"/sdn/zones/{names.zone}/{names.vnet(MGMT)}", SDN_ROLE, "group", names.group(infra_role)))
    return AccessDesign(groups, users, acls)


def in_scope(names: Names, path: str) -> bool:
    """ACL paths this site manages: its pools and its SDN zone."""
    return path in {f"/pool/{p}" for p in names.pools()} or path.startswith(f"/sdn/zones/{names.zone}")


def actual_acls(acl_list: list[dict[str, Any]], names: Names) -> set[Acl]:
    """The ACLs on the site's pools and zone that the site file decides. The API token's own user's are not: with
    a least-privilege token (docs/proxmox.md) its privileges on the pools and the zone are those ACLs, and revoking
    them would cut the apply off half-way."""
    token = getattr(names.site.backend, "token", None)
    own_user = str(token.id).split("!", 1)[0] if token is not None else None
    return {
        Acl(str(a["path"]), str(a["roleid"]), str(a["type"]), str(a["ugid"]))
        for a in acl_list
        if in_scope(names, str(a.get("path", "")))
        and a.get("type") in ("group", "user")
        and not (a.get("type") == "user" and a.get("ugid") == own_user)
    }


def split_groups(value: Any) -> set[str]:
    if isinstance(value, list):
        return {str(v) for v in value if v}
    return {g for g in str(value or "").split(",") if g}


def drift(
    site: Site, names: Names, groups: list[dict[str, Any]], users: list[dict[str, Any]], acls: set[Acl]
) -> list[str]:
    want = design(site, names)
    found_groups = {str(g["groupid"]) for g in groups}
    problems = [f"group {g} missing" for g in sorted(set(want.groups) - found_groups)]
    found_users = {str(u["userid"]): split_groups(u.get("groups")) for u in users}
    site_groups = set(want.groups)
    for uid, wanted in sorted(want.users.items()):
        if uid not in found_users:
            problems.append(f"user {uid} missing")
        elif found_users[uid] & site_groups != wanted:
            problems.append(f"user {uid} is in {sorted(found_users[uid] & site_groups)}, expected {sorted(wanted)}")
    for uid, member_of in found_users.items():
        if uid not in want.users and member_of & site_groups:
            problems.append(f"user {uid} is not in the site file but belongs to {sorted(member_of & site_groups)}")
    problems += [f"ACL missing: {a.role} on {a.path} for {a.kind} {a.ugid}" for a in sorted(want.acls - acls)]
    extra = sorted(acls - want.acls)
    problems += [f"ACL not in the site file: {a.role} on {a.path} for {a.kind} {a.ugid}" for a in extra]
    return problems


# ---- reading access back for the conformance suite (ACC-6) ------------------------------------------
def _ancestors(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def effective_roles(acl_list: list[dict[str, Any]], user: str, user_groups: set[str], path: str) -> dict[str, str]:
    """Proxmox's rule: the most specific path with an ACL for the user or their groups wins, a user's own ACL
    beats their groups' on the same path, and a parent's ACL applies only with propagate.
    Returns role -> the ACL path that grants it (NoAccess grants nothing)."""
    granted: dict[str, str] = {}
    for candidate in _ancestors(path):
        exact = candidate == path

        def pick(kind: str, ids: set[str], at: str = candidate, is_exact: bool = exact) -> dict[str, str]:
            return {
                str(a["roleid"]): at
                for a in acl_list
                if a.get("path") == at
                and a.get("type") == kind
                and str(a.get("ugid")) in ids
                and (is_exact or int(a.get("propagate", 1)) == 1)
            }

        own = pick("user", {user})
        via_groups = pick("group", user_groups)
        if own:
            granted = own
        elif via_groups:
            granted = via_groups
    return {r: p for r, p in granted.items() if r != "NoAccess"}
