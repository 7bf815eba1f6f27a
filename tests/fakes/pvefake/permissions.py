"""Permission evaluation (pve-access-control semantics, re-implemented).

* ACL paths are visited from `/` to the most specific; an entry applies when it is on the path
  itself or propagates from a parent. The most specific matching path replaces what parents gave;
  on one path, user entries override group entries. `NoAccess` wins over everything on its path.
* If nothing applies to `/vms/<id>` (or `/storage/<id>`), the ACLs of the member's pool apply.
* A privilege-separated token gets the intersection of its own ACLs and its user's privileges;
  a token without privsep gets its user's privileges. root@pam holds every privilege.
* The op's `permissions.check` expression from the schema (perm/and/or/perm-modify/userid-group/
  userid-param) decides 403s before the parameters are verified, as PVE's HTTP server does.
"""

from __future__ import annotations

import re
from typing import Any

from .auth import Identity
from .errors import ApiError, permission_denied
from .privileges import builtin_roles, valid_privileges
from .state import State

Privs = dict[str, bool]  # privilege -> propagate

CHECK_PATH_RE = re.compile(
    r"^(?:/"
    r"|/access|/access/groups|/access/groups/[\w.\-]+|/access/realm|/access/realm/[\w.\-]+"
    r"|/mapping|/mapping/[\w.\-]+|/mapping/[\w.\-]+/[\w.\-]+"
    r"|/nodes|/nodes/[\w.\-]+"
    r"|/pool|/pool/[\w.\-]+(?:/[\w.\-]+){0,2}"
    r"|/sdn|/sdn/controllers|/sdn/controllers/[\w.\-]+|/sdn/dns|/sdn/dns/[\w.\-]+"
    r"|/sdn/ipams|/sdn/ipams/[\w.\-]+|/sdn/fabrics|/sdn/fabrics/[\w.\-]+"
    r"|/sdn/zones|/sdn/zones/[\w.\-]+|/sdn/zones/[\w.\-]+/[\w.\-]+|/sdn/zones/[\w.\-]+/[\w.\-]+/\d+"
    r"|/storage|/storage/[\w.\-]+"
    r"|/vms|/vms/[1-9][0-9]{2,}"
    r")$",
    re.ASCII,
)


def normalize_path(path: str | None) -> str | None:
    """AccessControl::normalize_path: collapse slashes, drop a trailing one, refuse odd characters."""
    if not path:
        return None
    path = re.sub(r"/+", "/", path)
    path = path.rstrip("/") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not re.fullmatch(r"[A-Za-z0-9.\-_/]+", path):
        return None
    return path


def check_path(path: str) -> bool:
    return CHECK_PATH_RE.match(path) is not None


def template_replace(template: str, params: dict[str, Any]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: str(params.get(m.group(1), "-")), template)


class Permissions:
    def __init__(self, state: State) -> None:
        self.state = state

    # -- roles and privileges ------------------------------------------------------------------
    def role_privs(self, roleid: str) -> frozenset[str]:
        builtin = builtin_roles(self.state.version)
        if roleid in builtin:
            return builtin[roleid]
        return frozenset(self.state.roles.get(roleid, set()))

    def role_exists(self, roleid: str) -> bool:
        return roleid in builtin_roles(self.state.version) or roleid in self.state.roles

    def _roles(self, subject: str, is_token: bool, path: str) -> dict[str, bool]:
        by_path: dict[str, list[tuple[str, str, str, bool]]] = {}
        for key, propagate in self.state.acls.items():
            by_path.setdefault(key.path, []).append((key.type, key.ugid, key.roleid, propagate))
        groups = set() if is_token else {g for g, grp in self.state.groups.items() if subject in grp.members}
        # a token only has token entries; a user has user entries, which override its group entries
        kinds = [("token", {subject})] if is_token else [("user", {subject}), ("group", groups)]
        roles: dict[str, bool] = {}
        for acl_path in sorted(by_path):  # '/' first, then ever more specific paths
            final = acl_path == path
            if not (acl_path == "/" or final or path.startswith(acl_path + "/")):
                continue
            for kind, ugids in kinds:
                new = {
                    roleid: prop
                    for etype, ugid, roleid, prop in by_path[acl_path]
                    if etype == kind and ugid in ugids and (final or prop)
                }
                if new:
                    roles = new  # the more specific path replaces what parents granted
                    break
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles

    def _privs_from_roles(self, roles: dict[str, bool]) -> Privs:
        privs: Privs = {}
        for roleid, propagate in roles.items():
            for priv in self.role_privs(roleid):
                privs[priv] = privs.get(priv, False) or propagate
        return privs

    def _pool_roles(self, subject: str, is_token: bool, path: str) -> dict[str, bool]:
        """RPCEnvironment's poolroles: the roles `subject` holds on the pool a VM (or storage) belongs to."""
        m = re.match(r"^/vms/(\d+)$", path)
        if m:
            pool = self.state.pool_of(int(m.group(1)))
            return self._roles(subject, is_token, f"/pool/{pool}") if pool else {}
        m = re.match(r"^/storage/([^/]+)$", path)
        roles: dict[str, bool] = {}
        if m:
            for pool in self.state.pools.values():
                if m.group(1) in pool.storage:
                    roles.update(self._roles(subject, is_token, f"/pool/{pool.poolid}"))
        return roles

    def _subject_privs(self, subject: str, is_token: bool, path: str) -> Privs:
        """RPCEnvironment::compile_acl_path: the roles on the path, then the pool's roles merged in, never
        propagated and never over a role the path already sets; NoAccess on the path wins, a pool's NoAccess beats
        the path's other roles (upstream: `# NoAccess must not be trumped by pool ACLs`)."""
        roles = dict(self._roles(subject, is_token, path))
        pool_roles = self._pool_roles(subject, is_token, path)
        if pool_roles and "NoAccess" not in roles:
            if "NoAccess" in pool_roles:
                roles = {"NoAccess": False}
            else:
                for role in pool_roles:
                    roles.setdefault(role, False)
        if "NoAccess" in roles:
            return {}
        return self._privs_from_roles(roles)

    def privileges(self, who: Identity, path: str) -> Privs:
        with self.state.lock:
            if who.userid == "root@pam":
                user_privs: Privs = dict.fromkeys(valid_privileges(self.state.version), True)
            else:
                user_privs = self._subject_privs(who.userid, False, path)
            if who.tokenid is None:
                return user_privs
            user = self.state.users.get(who.userid)
            token = user.tokens.get(who.tokenid) if user else None
            if token is None:
                return {}
            if not token.privsep:
                return user_privs
            token_privs = self._subject_privs(who.auth_id, True, path)
            # the intersection; a privilege propagates only if it does for both (`$user_privs->{$_} && $privs->{$_}`)
            return {p: prop and user_privs[p] for p, prop in token_privs.items() if p in user_privs}

    def all_privileges(self, who: Identity) -> set[str]:
        """Every privilege `who` holds on some path (PVE's get_effective_permissions, flattened)."""
        with self.state.lock:
            paths = {"/"} | {k.path for k in self.state.acls} | {f"/vms/{v}" for v in self.state.vms}
            return {p for path in paths for p in self.privileges(who, path)}

    def effective_paths(self) -> set[str]:
        """RPCEnvironment::get_effective_permissions: the top-level paths, every ACL path, and the guests and
        storages of every pool."""
        with self.state.lock:
            paths = {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}
            paths |= {k.path for k in self.state.acls}
            for pool in self.state.pools.values():
                paths |= {f"/vms/{v}" for v in pool.vms} | {f"/storage/{s}" for s in pool.storage}
            return paths

    def has(self, who: Identity, path: str, privs: list[str] | tuple[str, ...], any_of: bool = False) -> bool:
        held = self.privileges(who, path)
        return any(p in held for p in privs) if any_of else all(p in held for p in privs)

    def check(self, who: Identity, path: str, privs: list[str] | tuple[str, ...], any_of: bool = False) -> None:
        held = self.privileges(who, path)
        if any_of:
            if not any(p in held for p in privs):
                raise permission_denied(f"{path}, {'|'.join(privs)}")
            return
        for priv in privs:
            if priv not in held:
                raise permission_denied(f"{path}, {priv}")

    def check_modify(self, who: Identity, path: str) -> None:
        """RPCEnvironment::check_perm_modify: Permissions.Modify, or the object type's allocate privilege; only
        /storage/, /vms/ and /pool/ have one (an SDN or mapping path needs Permissions.Modify, PVE 8.4 and 9.1)."""
        extra = {"/vms/": "VM.Allocate", "/storage/": "Datastore.Allocate", "/pool/": "Pool.Allocate"}
        privs = ["Permissions.Modify"] + [p for prefix, p in extra.items() if path.startswith(prefix)]
        self.check(who, path, privs, any_of=True)

    # -- schema permission expressions ---------------------------------------------------------
    def check_api(self, who: Identity, perm: dict[str, Any] | None, params: dict[str, Any]) -> None:
        if who.is_root:
            return
        if not perm:
            raise permission_denied("user != root@pam")
        if perm.get("user") in ("all", "world"):
            return
        check = perm.get("check")
        if check:
            if not self._eval(who, check, params):
                raise permission_denied()
            return
        raise permission_denied()

    def _eval(self, who: Identity, expr: list[Any], params: dict[str, Any], noerr: bool = False) -> bool:
        kind = expr[0]
        if kind == "and":
            return all(self._eval(who, sub, params, noerr) for sub in expr[1:])
        if kind == "or":
            if any(self._eval(who, sub, params, True) for sub in expr[1:]):
                return True
            if noerr:
                return False
            raise permission_denied()
        if kind == "perm":
            tmpl, privs = expr[1], list(expr[2])
            opts = dict(zip(expr[3::2], expr[4::2], strict=False))
            required = opts.get("require_param")
            if required and params.get(required) is None:
                if noerr:
                    return False
                raise permission_denied()
            path = normalize_path(template_replace(tmpl, params)) or tmpl
            return self._guarded(lambda: self.check(who, path, privs, any_of=bool(opts.get("any"))), noerr)
        if kind == "perm-modify":
            path = normalize_path(template_replace(expr[1], params)) or "/"
            return self._guarded(lambda: self.check_modify(who, path), noerr)
        if kind == "userid-param":
            return self._guarded(lambda: self._userid_param(who, expr[1], params), noerr)
        if kind == "userid-group":
            opts = dict(zip(expr[2::2], expr[3::2], strict=False))
            return self._guarded(lambda: self._userid_group(who, list(expr[1]), opts, params), noerr)
        # Unknown expression kinds are treated as granted: the fake must not be stricter than PVE.
        return True

    @staticmethod
    def _guarded(fn: Any, noerr: bool) -> bool:
        try:
            fn()
        except ApiError:
            if noerr:
                return False
            raise
        return True

    def _userid_param(self, who: Identity, mode: str, params: dict[str, Any]) -> None:
        userid = str(params.get("userid", ""))
        if mode == "self":
            if userid != who.userid:
                raise permission_denied("Invalid userid")
            return
        realm = userid.partition("@")[2]
        self.check(who, f"/access/realm/{realm}", [mode])

    def _userid_group(self, who: Identity, privs: list[str], opts: dict[str, Any], params: dict[str, Any]) -> None:
        if self.has(who, "/access/groups", privs, any_of=True):
            return
        if opts.get("groups_param"):
            for group in re.split(r"[,;\s]+", str(params.get("groups") or "")):
                if group and not self.has(who, f"/access/groups/{group}", privs, any_of=True):
                    raise permission_denied(f"/access/groups/{group}, {'|'.join(privs)}")
        if opts.get("groups_param") != "create":
            userid = str(params.get("userid", ""))
            groups = self.state.user_groups(userid)
            if not any(self.has(who, f"/access/groups/{g}", privs, any_of=True) for g in groups):
                raise permission_denied(f"/access/groups, {'|'.join(privs)}")
