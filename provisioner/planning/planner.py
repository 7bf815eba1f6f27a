"""What a backend intends to change: a list of creates, updates, starts and deletes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # reconfigure in place, data kept
    START = "start"
    REPLACE = "replace"  # delete then create: data is lost
    DELETE = "delete"


class Kind(StrEnum):
    SEGMENT = "segment"
    GATEWAY = "gateway"
    HOST = "host"
    POLICY = "policy"  # hypervisor-side policy objects: pools, access, security groups


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    name: str
    environment: str | None
    detail: str = ""
    production: bool = False

    @property
    def harms_production(self) -> bool:
        """Changing or removing something that already runs in production."""
        return self.production and self.action in (Action.UPDATE, Action.REPLACE, Action.DELETE)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["action"] = str(self.action)
        data["kind"] = str(self.kind)
        return data


@dataclass
class Plan:
    site: str
    changes: list[Change] = field(default_factory=list)
    # what plan found that apply will not change, yet the sysadmin must know (e.g. a hypervisor firewall left off)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def harming_production(self) -> list[Change]:
        return [c for c in self.changes if c.harms_production]

    def of(self, kind: Kind, *actions: Action) -> list[Change]:
        return [c for c in self.changes if c.kind == kind and (not actions or c.action in actions)]

    def as_dict(self) -> dict[str, object]:
        return {"site": self.site, "changes": [c.as_dict() for c in self.changes], "notes": list(self.notes)}
