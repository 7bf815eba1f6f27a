"""Privileges and built-in roles per PVE version (facts from pve-access-control, written out here).

PVE builds its special roles from privilege groups: each category has `root` (only root@pam),
`admin`, `user` and `audit` privileges. `PVE<Cat>Admin` = admin + user + audit, `PVE<Cat>User` =
user + audit, `PVEAuditor` = every audit privilege, `Administrator` = everything, `NoAccess` = none.
PVE 9 dropped `VM.Monitor` and added the `VM.GuestAgent.*` and `VM.Replicate` privileges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivGroup:
    root: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()

    def all(self) -> tuple[str, ...]:
        return self.root + self.admin + self.user + self.audit


def _vm_group(version: str) -> PrivGroup:
    admin = [
        "VM.Config.Disk",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.HWType",
        "VM.Config.Options",
        "VM.Allocate",
        "VM.Clone",
        "VM.Migrate",
        "VM.Snapshot",
        "VM.Snapshot.Rollback",
    ]
    user = ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.PowerMgmt"]
    audit = ["VM.Audit"]
    if is_v9(version):
        admin += ["VM.GuestAgent.Unrestricted", "VM.Replicate"]
        user += ["VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite", "VM.GuestAgent.FileSystemMgmt"]
        audit += ["VM.GuestAgent.Audit"]
    else:
        admin.append("VM.Monitor")
    return PrivGroup(admin=tuple(admin), user=tuple(user), audit=tuple(audit))


def is_v9(version: str) -> bool:
    return int(version.split(".")[0]) >= 9


def priv_groups(version: str) -> dict[str, PrivGroup]:
    # Permissions.Modify, Sys.Modify and friends are root-level: PVEAdmin must not hold them.
    sys_root = ["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Permissions.Modify"]
    if is_v9(version):
        sys_root.append("Sys.AccessNetwork")
    return {
        "VM": _vm_group(version),
        "Sys": PrivGroup(root=tuple(sys_root), admin=("Sys.Console", "Sys.Syslog"), audit=("Sys.Audit",)),
        "Datastore": PrivGroup(
            admin=("Datastore.Allocate", "Datastore.AllocateTemplate"),
            user=("Datastore.AllocateSpace",),
            audit=("Datastore.Audit",),
        ),
        "SDN": PrivGroup(admin=("SDN.Allocate",), user=("SDN.Use",), audit=("SDN.Audit",)),
        "User": PrivGroup(root=("Realm.Allocate",), admin=("User.Modify", "Group.Allocate", "Realm.AllocateUser")),
        "Pool": PrivGroup(admin=("Pool.Allocate",), audit=("Pool.Audit",)),
        "Mapping": PrivGroup(admin=("Mapping.Modify",), user=("Mapping.Use",), audit=("Mapping.Audit",)),
    }


def valid_privileges(version: str) -> frozenset[str]:
    return frozenset(p for g in priv_groups(version).values() for p in g.all())


def builtin_roles(version: str) -> dict[str, frozenset[str]]:
    """The special (read-only) roles PVE creates, keyed by role id."""
    groups = priv_groups(version)
    roles: dict[str, frozenset[str]] = {
        "Administrator": valid_privileges(version),
        "NoAccess": frozenset(),
        "PVEAuditor": frozenset(p for g in groups.values() for p in g.audit),
        "PVEAdmin": frozenset(p for g in groups.values() for p in g.admin + g.user + g.audit),
        "PVETemplateUser": frozenset({"VM.Clone", "VM.Audit"}),
    }
    for cat in ("VM", "Datastore", "SDN", "Pool", "Mapping", "User", "Sys"):
        g = groups[cat]
        roles[f"PVE{cat}Admin"] = frozenset(g.admin + g.user + g.audit)
        if g.user:
            roles[f"PVE{cat}User"] = frozenset(g.user + g.audit)
    roles["PVEPoolUser"] = frozenset({"Pool.Audit"})
    return roles
