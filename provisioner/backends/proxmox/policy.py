"""The site's policy objects on the cluster: resource pools, hypervisor users, groups and ACLs, security groups."""

from __future__ import annotations

from typing import Any

from provisioner.backends.base import Report
from provisioner.backends.proxmox import access, enforcement, firewall
from provisioner.backends.proxmox.client import PveClient
from provisioner.backends.proxmox.names import Names
from provisioner.planning.planner import Action, Kind, Plan
from provisioner.site.load import LoadedSite

# the plan names the policy changes it makes (Kind.POLICY) by these names, and firewall-<env>, pool-<env>
POOLS = "pools"
ACCESS = "access"
DC_FIREWALL = "datacenter-firewall"


class PolicyWriter:
    def __init__(self, client: PveClient, site: LoadedSite, names: Names, firewall_settle: float):
        self.client = client
        self.site = site
        self.names = names
        self.firewall_settle = firewall_settle

    def ensure(self, plan: Plan, report: Report) -> None:
        """Pools, access and security groups the plan asks for, and the datacenter firewall switched on."""
        ensure = {c.name for c in plan.of(Kind.POLICY) if c.action != Action.DELETE}
        if POOLS in ensure:
            self._ensure_pools(report)
        if ACCESS in ensure:
            self._ensure_access(report)
        for env in self.site.model.environments:
            if f"firewall-{env.name}" in ensure:
                self._ensure_security_group(env.name, report)
        if DC_FIREWALL in ensure:  # last: the security groups are in place before anything filters
            enforcement.switch_on(self.client, self.client.fork, self.names, report, self.firewall_settle)

    def remove(self, plan: Plan, report: Report) -> None:
        """What goes with the environments: security groups first, then pools and access."""
        gone = [c.name for c in plan.of(Kind.POLICY, Action.DELETE)]
        for name in sorted(gone, key=lambda n: not n.startswith("firewall-")):  # stable: plan order otherwise
            kind, _, env = name.partition("-")
            if kind == "firewall":
                self._remove_security_group(env, report)
            elif kind == "pool":
                self._remove_pool(self.names.pool(None if env == "infra" else env), report)
            elif name == ACCESS:
                self._remove_access(report)

    def _ensure_pools(self, report: Report) -> None:
        have = {str(p.get("poolid")) for p in self.client.get("pools") or []}
        for pool in self.names.pools():
            if pool not in have:
                env = pool.removeprefix(f"{self.site.name}-")
                self._create(
                    f"resource pool {pool}", "pools", {"poolid": pool, "comment": self.names.comment(env=env)}, report
                )

    def _create(self, what: str, path: str, params: dict[str, Any], report: Report) -> None:
        """POST one object, settled once the listing at `path` holds it (by the first parameter, its id)."""
        report(f"creating {what}")
        key = next(iter(params))
        self.client.call("POST", path, params, settle=lambda: str(params[key]) in self._listed(path, key))

    def _listed(self, path: str, key: str) -> set[str]:
        return {str(x.get(key)) for x in self.client.get(path) or []}

    def _remove_pool(self, pool: str, report: Report) -> None:
        if pool in {str(p.get("poolid")) for p in self.client.get("pools") or []}:
            report(f"removing resource pool {pool}")
            self.client.call("DELETE", "pools", {"poolid": pool}, settle=lambda: pool not in self._pool_ids())

    def _pool_ids(self) -> set[str]:
        return self._listed("pools", "poolid")

    def _ensure_access(self, report: Report) -> None:
        c = self.client
        want = access.design(self.site.model, self.names)
        groups = {str(g.get("groupid")) for g in c.get("access/groups") or []}
        for group, comment in sorted(want.groups.items()):
            if group not in groups:
                self._create(f"group {group}", "access/groups", {"groupid": group, "comment": comment}, report)
        users = {str(u.get("userid")): u for u in c.get("access/users") or []}
        site_groups = set(want.groups)
        for uid, wanted in sorted(want.users.items()):
            if uid not in users:
                params = {"userid": uid, "groups": ",".join(sorted(wanted)), "comment": self.names.comment()}
                self._create(f"hypervisor user {uid}", "access/users", params, report)
                users[uid] = c.get(f"access/users/{uid}") or {}  # another site may have made it first
            member_of = access.split_groups(users[uid].get("groups"))
            if member_of & site_groups - wanted:
                report(f"setting the groups of {uid}")
                c.put(f"access/users/{uid}", groups=",".join(sorted((member_of - site_groups) | wanted)))
            elif wanted - member_of:
                # appending leaves memberships that other sites give the same person untouched, even in a race
                report(f"adding {uid} to {', '.join(sorted(wanted - member_of))}")
                c.put(f"access/users/{uid}", groups=",".join(sorted(wanted - member_of)), append=1)
        for uid, user in users.items():
            member_of = access.split_groups(user.get("groups"))
            if uid not in want.users and member_of & site_groups:
                report(f"removing {uid} from the site's groups (not in the site file)")
                c.put(f"access/users/{uid}", groups=",".join(sorted(member_of - site_groups)))
        have_acls = access.actual_acls(c.get("access/acl") or [], self.names)
        for acl in sorted(have_acls - want.acls):
            report(f"revoking {acl.role} on {acl.path} from {acl.kind} {acl.ugid}")
            c.put("access/acl", **acl.params(), delete=1)
        for acl in sorted(want.acls - have_acls):
            report(f"granting {acl.role} on {acl.path} to {acl.kind} {acl.ugid}")
            c.put("access/acl", **acl.params())

    def _remove_access(self, report: Report) -> None:
        c = self.client
        for acl in sorted(access.actual_acls(c.get("access/acl") or [], self.names)):
            c.put("access/acl", **acl.params(), delete=1)
        want = access.design(self.site.model, self.names)
        for user in c.get("access/users") or []:
            uid = str(user.get("userid"))
            member_of = access.split_groups(user.get("groups"))
            if self.names.owns_comment(user.get("comment")) and not (member_of - set(want.groups)):
                report(f"removing hypervisor user {uid}")
                c.call("DELETE", f"access/users/{uid}", {}, settle=lambda u=uid: not self._user_exists(u))  # type: ignore[misc]
        for group in c.get("access/groups") or []:
            gid = str(group.get("groupid"))
            if gid in want.groups and self.names.owns_comment(group.get("comment")):
                report(f"removing group {gid}")
                c.call("DELETE", f"access/groups/{gid}", {}, settle=lambda g=gid: not self._group_exists(g))  # type: ignore[misc]

    def _user_exists(self, uid: str) -> bool:
        return uid in self._listed("access/users", "userid")

    def _group_exists(self, gid: str) -> bool:
        return gid in self._listed("access/groups", "groupid")

    def _ensure_security_group(self, env: str, report: Report) -> None:
        c = self.client
        name = self.names.security_group(env)
        rules = firewall.rules_for(self.site.model, env)
        comment = firewall.group_comment(self.names, env, rules)
        groups = {str(g.get("group")): g for g in c.get("cluster/firewall/groups") or []}
        if name not in groups:
            self._create(
                f"security group {name}", "cluster/firewall/groups", {"group": name, "comment": comment}, report
            )
        report(f"writing the rules of security group {name}")
        for existing in sorted(c.get(f"cluster/firewall/groups/{name}") or [], key=lambda r: -int(r.get("pos", 0))):
            c.delete(f"cluster/firewall/groups/{name}/{existing['pos']}")
        for rule in reversed(rules):  # each new rule goes to the top
            c.post(f"cluster/firewall/groups/{name}", **rule.params())
        c.post("cluster/firewall/groups", group=name, rename=name, comment=comment)

    def _remove_security_group(self, env: str, report: Report) -> None:
        c = self.client
        name = self.names.security_group(env)
        if name not in {str(g.get("group")) for g in c.get("cluster/firewall/groups") or []}:
            return
        report(f"removing security group {name}")
        for existing in sorted(c.get(f"cluster/firewall/groups/{name}") or [], key=lambda r: -int(r.get("pos", 0))):
            c.delete(f"cluster/firewall/groups/{name}/{existing['pos']}")
        c.delete(f"cluster/firewall/groups/{name}")
