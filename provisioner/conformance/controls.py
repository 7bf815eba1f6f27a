"""The A.8.31 control catalogue: stable IDs, titles, severities and ISO references."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from provisioner.paths import control_catalogue

ISO_2013 = "ISO/IEC 27001:2013 A.12.1.4"


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str  # critical | high | medium | low
    iso2022: tuple[str, ...]
    iso2013: str = ISO_2013

    def as_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "iso2022": list(self.iso2022)}


CATALOGUE = control_catalogue()


def _load(path: Path) -> dict[str, Control]:
    rows = yaml.safe_load(path.read_text())
    return {
        row["id"]: Control(
            row["id"], row["title"], row["severity"], tuple(row["iso2022"]), row.get("iso2013", ISO_2013)
        )
        for row in rows
    }


CONTROLS: dict[str, Control] = _load(CATALOGUE)
