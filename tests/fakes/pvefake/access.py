"""Access control routes (pve-access-control): tickets, users, API tokens, groups, roles, ACLs,
effective permissions. Writes that PVE does under lock_user_config fail as `<op> failed: <why>`."""

from __future__ import annotations

import uuid
from typing import Any

from .api import Api, Request, Routes
from .common import flag, list_param, opt_int, opt_str
from .errors import ApiError, die, param_error
from .permissions import check_path, normalize_path
from .privileges import builtin_roles
from .state import AclKey, Group, Token, User

ROUTES = Routes()


@ROUTES.add("GET", "/access")
def access_index(api: Api, req: Request) -> list[dict[str, str]]:
    return [{"subdir": n} for n in ("users", "groups", "roles", "acl", "domains", "ticket", "permissions")]


# -- tickets --------------------------------------------------------------------------------------


@ROUTES.add("GET", "/access/ticket")
def ticket_dummy(api: Api, req: Request) -> None:
    return None


@ROUTES.add("POST", "/access/ticket")
def create_ticket(api: Api, req: Request) -> dict[str, Any]:
    return api.auth.login(str(req.params["username"]), str(req.params["password"]), opt_str(req.params, "realm"))


@ROUTES.add("PUT", "/access/password")
def change_password(api: Api, req: Request) -> None:
    userid = str(req.params["userid"])
    if userid != req.who.userid:
        api.perms.check(req.who, f"/access/realm/{userid.partition('@')[2]}", ["Realm.AllocateUser"])
    user = _user(api, userid)
    user.password = str(req.params["password"])


# -- users ----------------------------------------------------------------------------------------


def _user(api: Api, userid: str, errmsg: str | None = None) -> User:
    user = api.state.users.get(userid)
    if user is None:
        msg = f"no such user ('{userid}')"
        raise die(f"{errmsg}: {msg}" if errmsg else msg)
    return user


def _user_entry(api: Api, user: User, full: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "userid": user.userid,
        "enable": 1 if user.enable else 0,
        "expire": user.expire,
        "realm-type": "pam" if user.userid.endswith("@pam") else "pve",
    }
    for key in ("firstname", "lastname", "email", "comment"):
        if getattr(user, key):
            entry[key] = getattr(user, key)
    groups = api.state.user_groups(user.userid)
    if groups:
        entry["groups"] = ",".join(groups)
    if full:
        entry["tokens"] = [_token_entry(t) for t in sorted(user.tokens.values(), key=lambda t: t.tokenid)]
    return entry


def _may_see_user(api: Api, req: Request, userid: str) -> bool:
    if userid == req.who.userid:
        return True
    return api.perms.has(req.who, "/access/groups", ["User.Modify", "Sys.Audit"], any_of=True) or any(
        api.perms.has(req.who, f"/access/groups/{g}", ["User.Modify", "Sys.Audit"], any_of=True)
        for g in api.state.user_groups(userid)
    )


@ROUTES.add("GET", "/access/users")
def list_users(api: Api, req: Request) -> list[dict[str, Any]]:
    enabled = req.params.get("enabled")
    full = flag(req.params, "full")
    out = []
    for userid in sorted(api.state.users):
        user = api.state.users[userid]
        if enabled is not None and user.enable != flag(req.params, "enabled"):
            continue
        if _may_see_user(api, req, userid):
            out.append(_user_entry(api, user, full))
    return out


def _check_groups_exist(api: Api, groups: list[str], errmsg: str) -> None:
    for group in groups:
        if group not in api.state.groups:
            raise die(f"{errmsg}: group '{group}' does not exist")


def _set_user_fields(user: User, params: dict[str, Any]) -> None:
    if params.get("enable") is not None:
        user.enable = flag(params, "enable")
    if params.get("expire") is not None:
        user.expire = int(params["expire"])
    for key in ("firstname", "lastname", "email", "comment"):
        if params.get(key) is not None:
            setattr(user, key, str(params[key]))


@ROUTES.add("POST", "/access/users")
def create_user(api: Api, req: Request) -> None:
    errmsg = "create user failed"
    userid = str(req.params["userid"])
    if userid in api.state.users:
        raise die(f"{errmsg}: user '{userid}' already exists")
    groups = list_param(req.params, "groups")
    _check_groups_exist(api, groups, errmsg)
    user = User(userid, password=opt_str(req.params, "password"))
    _set_user_fields(user, req.params)
    api.state.users[userid] = user
    for group in groups:
        api.state.groups[group].members.add(userid)


@ROUTES.add("GET", "/access/users/{userid}")
def get_user(api: Api, req: Request) -> dict[str, Any]:
    userid = str(req.params["userid"])
    user = _user(api, userid)
    if not _may_see_user(api, req, userid):
        raise ApiError(403, "Permission check failed (/access/groups, User.Modify|Sys.Audit)")
    entry = _user_entry(api, user, False)
    entry.pop("userid")
    entry["groups"] = api.state.user_groups(userid)
    entry["tokens"] = {t.tokenid: _token_entry(t, with_id=False) for t in user.tokens.values()}
    return entry


@ROUTES.add("PUT", "/access/users/{userid}")
def update_user(api: Api, req: Request) -> None:
    errmsg = "update user failed"
    userid = str(req.params["userid"])
    user = _user(api, userid, errmsg)
    if req.params.get("groups") is not None:
        groups = list_param(req.params, "groups")
        _check_groups_exist(api, groups, errmsg)
        if not flag(req.params, "append"):
            for group in api.state.groups.values():
                group.members.discard(userid)
        for group in groups:
            api.state.groups[group].members.add(userid)
    _set_user_fields(user, req.params)


@ROUTES.add("DELETE", "/access/users/{userid}")
def delete_user(api: Api, req: Request) -> None:
    userid = str(req.params["userid"])
    _user(api, userid, "delete user failed")
    del api.state.users[userid]
    for group in api.state.groups.values():
        group.members.discard(userid)
    for key in [k for k in api.state.acls if k.ugid == userid or k.ugid.startswith(userid + "!")]:
        del api.state.acls[key]


# -- tokens ---------------------------------------------------------------------------------------


def _token_entry(token: Token, with_id: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"privsep": 1 if token.privsep else 0, "expire": token.expire}
    if token.comment:
        entry["comment"] = token.comment
    if with_id:
        entry["tokenid"] = token.tokenid
    return entry


def _token(api: Api, userid: str, tokenid: str) -> Token:
    user = _user(api, userid)
    token = user.tokens.get(tokenid)
    if token is None:
        raise die(f"no such token '{tokenid}' for user '{userid}'")
    return token


@ROUTES.add("GET", "/access/users/{userid}/token")
def list_tokens(api: Api, req: Request) -> list[dict[str, Any]]:
    user = _user(api, str(req.params["userid"]))
    return [_token_entry(t) for t in sorted(user.tokens.values(), key=lambda t: t.tokenid)]


@ROUTES.add("GET", "/access/users/{userid}/token/{tokenid}")
def get_token(api: Api, req: Request) -> dict[str, Any]:
    return _token_entry(_token(api, str(req.params["userid"]), str(req.params["tokenid"])), with_id=False)


@ROUTES.add("POST", "/access/users/{userid}/token/{tokenid}")
def create_token(api: Api, req: Request) -> dict[str, Any]:
    userid, tokenid = str(req.params["userid"]), str(req.params["tokenid"])
    user = _user(api, userid, "generating token failed")
    if tokenid in user.tokens:
        raise die("generating token failed: Token already exists.")
    expire = opt_int(req.params, "expire")
    token = Token(
        tokenid,
        secret=str(uuid.UUID(int=api.rng.getrandbits(128), version=4)),
        privsep=flag(req.params, "privsep", default=True),
        expire=user.expire if expire is None else expire,
        comment=str(req.params.get("comment") or ""),
    )
    user.tokens[tokenid] = token
    return {"full-tokenid": f"{userid}!{tokenid}", "info": _token_entry(token, with_id=False), "value": token.secret}


@ROUTES.add("PUT", "/access/users/{userid}/token/{tokenid}")
def update_token(api: Api, req: Request) -> dict[str, Any]:
    token = _token(api, str(req.params["userid"]), str(req.params["tokenid"]))
    if req.params.get("privsep") is not None:
        token.privsep = flag(req.params, "privsep")
    if req.params.get("expire") is not None:
        token.expire = int(req.params["expire"])
    if req.params.get("comment") is not None:
        token.comment = str(req.params["comment"])
    return _token_entry(token, with_id=False)


@ROUTES.add("DELETE", "/access/users/{userid}/token/{tokenid}")
def delete_token(api: Api, req: Request) -> None:
    userid, tokenid = str(req.params["userid"]), str(req.params["tokenid"])
    _token(api, userid, tokenid)
    del api.state.users[userid].tokens[tokenid]
    full = f"{userid}!{tokenid}"
    for key in [k for k in api.state.acls if k.type == "token" and k.ugid == full]:
        del api.state.acls[key]


# -- groups ---------------------------------------------------------------------------------------


@ROUTES.add("GET", "/access/groups")
def list_groups(api: Api, req: Request) -> list[dict[str, Any]]:
    out = []
    for gid in sorted(api.state.groups):
        if not api.perms.has(req.who, f"/access/groups/{gid}", ["Sys.Audit", "Group.Allocate"], any_of=True):
            continue
        group = api.state.groups[gid]
        entry: dict[str, Any] = {"groupid": gid, "users": ",".join(sorted(group.members))}
        if group.comment:
            entry["comment"] = group.comment
        out.append(entry)
    return out


def _group(api: Api, groupid: str, errmsg: str | None = None) -> Group:
    group = api.state.groups.get(groupid)
    if group is None:
        msg = f"group '{groupid}' does not exist"
        raise die(f"{errmsg}: {msg}" if errmsg else msg)
    return group


@ROUTES.add("POST", "/access/groups")
def create_group(api: Api, req: Request) -> None:
    groupid = str(req.params["groupid"])
    if groupid in api.state.groups:
        raise die(f"create group failed: group '{groupid}' already exists")
    api.state.groups[groupid] = Group(groupid, comment=str(req.params.get("comment") or ""))


@ROUTES.add("GET", "/access/groups/{groupid}")
def get_group(api: Api, req: Request) -> dict[str, Any]:
    group = _group(api, str(req.params["groupid"]))
    out: dict[str, Any] = {"members": sorted(group.members)}
    if group.comment:
        out["comment"] = group.comment
    return out


@ROUTES.add("PUT", "/access/groups/{groupid}")
def update_group(api: Api, req: Request) -> None:
    group = _group(api, str(req.params["groupid"]), "update group failed")
    if req.params.get("comment") is not None:
        group.comment = str(req.params["comment"])


@ROUTES.add("DELETE", "/access/groups/{groupid}")
def delete_group(api: Api, req: Request) -> None:
    groupid = str(req.params["groupid"])
    _group(api, groupid, "delete group failed")
    del api.state.groups[groupid]
    for key in [k for k in api.state.acls if k.type == "group" and k.ugid == groupid]:
        del api.state.acls[key]


# -- roles ----------------------------------------------------------------------------------------


@ROUTES.add("GET", "/access/roles")
def list_roles(api: Api, req: Request) -> list[dict[str, Any]]:
    out = [
        {"roleid": rid, "privs": ",".join(sorted(privs)), "special": 1}
        for rid, privs in builtin_roles(api.state.version).items()
    ]
    out += [{"roleid": rid, "privs": ",".join(sorted(privs)), "special": 0} for rid, privs in api.state.roles.items()]
    return sorted(out, key=lambda r: str(r["roleid"]))


@ROUTES.add("GET", "/access/roles/{roleid}")
def get_role(api: Api, req: Request) -> dict[str, int]:
    roleid = str(req.params["roleid"])
    if not api.perms.role_exists(roleid):
        raise die(f"role '{roleid}' does not exist")
    return dict.fromkeys(sorted(api.perms.role_privs(roleid)), 1)


@ROUTES.add("POST", "/access/roles")
def create_role(api: Api, req: Request) -> None:
    roleid = str(req.params["roleid"])
    if api.perms.role_exists(roleid):
        raise die(f"create role failed: role '{roleid}' already exists")
    api.state.roles[roleid] = set(list_param(req.params, "privs"))


@ROUTES.add("PUT", "/access/roles/{roleid}")
def update_role(api: Api, req: Request) -> None:
    roleid = str(req.params["roleid"])
    if roleid in builtin_roles(api.state.version):
        raise die(f"update role failed: cannot modify special role '{roleid}'")
    if roleid not in api.state.roles:
        raise die(f"update role failed: role '{roleid}' does not exist")
    privs = set(list_param(req.params, "privs"))
    if flag(req.params, "append"):
        api.state.roles[roleid] |= privs
    else:
        api.state.roles[roleid] = privs


@ROUTES.add("DELETE", "/access/roles/{roleid}")
def delete_role(api: Api, req: Request) -> None:
    roleid = str(req.params["roleid"])
    if roleid in builtin_roles(api.state.version):
        raise die(f"cannot delete special role '{roleid}'")
    if roleid not in api.state.roles:
        raise die(f"delete role failed: role '{roleid}' does not exist")
    del api.state.roles[roleid]
    for key in [k for k in api.state.acls if k.roleid == roleid]:
        del api.state.acls[key]


# -- ACLs -----------------------------------------------------------------------------------------


@ROUTES.add("GET", "/access/acl")
def list_acl(api: Api, req: Request) -> list[dict[str, Any]]:
    out = []
    for key, propagate in sorted(
        api.state.acls.items(), key=lambda kv: (kv[0].path, kv[0].type, kv[0].ugid, kv[0].roleid)
    ):
        if not api.perms.has(req.who, key.path, ["Sys.Audit", "Permissions.Modify"], any_of=True):
            continue
        out.append(
            {
                "path": key.path,
                "type": key.type,
                "ugid": key.ugid,
                "roleid": key.roleid,
                "propagate": 1 if propagate else 0,
            }
        )
    return out


@ROUTES.add("PUT", "/access/acl")
def update_acl(api: Api, req: Request) -> None:
    params = req.params
    users, groups, tokens = list_param(params, "users"), list_param(params, "groups"), list_param(params, "tokens")
    if not (users or groups or tokens):
        raise param_error(
            {k: "either 'users', 'groups' or 'tokens' is required." for k in ("users", "groups", "tokens")}
        )
    raw_path = str(params["path"])
    path = normalize_path(raw_path)
    delete = flag(params, "delete")
    if path is None or (not delete and not check_path(path)):
        raise param_error({"path": f"invalid ACL path '{raw_path}'"})
    propagate = flag(params, "propagate", default=True)
    errmsg = "ACL update failed"
    # ACL.pm update_acl: without Permissions.Modify on the path (perm-modify let VM.Allocate, Pool.Allocate... in)
    # one may only add or remove roles whose every privilege one holds on the path, propagated when adding with
    # propagate; NoAccess needs Permissions.Modify.
    held = api.perms.privileges(req.who, path)
    may_modify = "Permissions.Modify" in held
    verb = "remove" if delete else "add"
    changes: list[tuple[AclKey, bool]] = []
    for roleid in list_param(params, "roles"):
        if not api.perms.role_exists(roleid):
            raise die(f"{errmsg}: role '{roleid}' does not exist")
        if not may_modify:
            for priv in sorted(api.perms.role_privs(roleid)):
                if priv not in held:
                    msg = f"Cannot {verb} role '{roleid}' - requires 'Permissions.Modify' or superset of privileges."
                    raise param_error({"role": msg})
                if propagate and not held[priv] and not delete:
                    msg = (
                        f"Cannot {verb} role '{roleid}' with propagation - requires 'Permissions.Modify' or "
                        "propagated superset of privileges."
                    )
                    raise param_error({"role": msg})
            if roleid == "NoAccess":
                raise param_error({"role": f"Cannot {verb} role '{roleid}' - requires 'Permissions.Modify'"})
        for group in groups:
            if group not in api.state.groups:
                raise die(f"{errmsg}: group '{group}' does not exist")
            changes.append((AclKey(path, "group", group, roleid), propagate))
        for userid in users:
            if userid not in api.state.users:
                raise die(f"{errmsg}: user '{userid}' does not exist")
            changes.append((AclKey(path, "user", userid, roleid), propagate))
        for tokenid in tokens:
            userid, _, name = tokenid.partition("!")
            user = api.state.users.get(userid)
            if user is None or name not in user.tokens:
                raise die(f"{errmsg}: no such token '{name}' for user '{userid}'")
            changes.append((AclKey(path, "token", tokenid, roleid), propagate))
    for key, prop in changes:
        if delete:
            api.state.acls.pop(key, None)
        else:
            api.state.acls[key] = prop  # re-adding is idempotent (propagate is updated)


@ROUTES.add("GET", "/access/permissions")
def permissions(api: Api, req: Request) -> dict[str, dict[str, int]]:
    from .auth import Identity

    target = opt_str(req.params, "userid") or req.who.auth_id
    userid, _, tokenid = target.partition("!")
    own = userid == req.who.userid and (req.who.tokenid is None or tokenid == req.who.tokenid)
    if not own:
        api.perms.check(req.who, "/access", ["Sys.Audit"])
    who = Identity(userid, tokenid or None)
    if userid not in api.state.users:
        raise die(f"no such user ('{userid}')")
    path = opt_str(req.params, "path")
    paths = [normalize_path(path) or path] if path is not None else sorted(api.perms.effective_paths())
    out: dict[str, dict[str, int]] = {}
    for candidate in paths:
        privs = api.perms.privileges(who, candidate)
        if privs or path is not None:
            out[candidate] = {p: 1 if prop else 0 for p, prop in sorted(privs.items())}
    return out


@ROUTES.add("GET", "/access/domains")
def list_domains(api: Api, req: Request) -> list[dict[str, Any]]:
    return [
        {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
        {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
    ]
