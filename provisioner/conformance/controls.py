"""The A.8.31 control catalogue: stable IDs, titles, severities and ISO references."""

from __future__ import annotations

from dataclasses import dataclass

ISO_2013 = "ISO/IEC 27001:2013 A.12.1.4"


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str  # critical | high | medium | low
    iso2022: tuple[str, ...]
    iso2013: str = ISO_2013

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "iso2022": list(self.iso2022),
            "iso2013": self.iso2013,
        }


_A831 = "ISO/IEC 27001:2022 A.8.31"

CONTROLS: dict[str, Control] = {
    c.id: c
    for c in (
        Control(
            "NET-1", "Each environment has its own segment and subnet; no host sits in two", "high", (_A831, "A.8.22")
        ),
        Control(
            "NET-2",
            "Default deny between environments; only declared flows pass; nothing enters prod",
            "critical",
            (_A831, "A.8.22", "A.8.20"),
        ),
        Control(
            "NET-3",
            "Host firewalls drop inbound by default; SSH only from management",
            "high",
            (_A831, "A.8.20", "A.8.22"),
        ),
        Control(
            "ACC-1",
            "No developer or tester account on production hosts",
            "critical",
            (_A831, "A.5.3", "A.8.2", "A.5.15"),
        ),
        Control(
            "ACC-2", "A developer's SSH key is refused by every production host", "critical", (_A831, "A.5.15", "A.8.5")
        ),
        Control(
            "ACC-3",
            "A developer cannot reach or log in to the production database",
            "critical",
            (_A831, "A.8.3", "A.5.15"),
        ),
        Control(
            "ACC-4",
            "On production, sudo only for administrators; deploy runs only the deploy command",
            "high",
            (_A831, "A.8.2", "A.8.18"),
        ),
        Control("ACC-5", "No root login and no password authentication over SSH", "high", (_A831, "A.8.5")),
        Control(
            "ACC-6",
            "At the hypervisor, developers hold no rights on production resources",
            "critical",
            (_A831, "A.5.15", "A.5.18", "A.8.2"),
        ),
        Control(
            "CUE-1",
            "Every host announces its environment at login and in the prompt, in its colour",
            "medium",
            (_A831,),
        ),
        Control(
            "CUE-2",
            "Host names carry the environment; web pages outside production show an environment banner",
            "medium",
            (_A831,),
        ),
        Control(
            "CHG-1",
            "One-way path to live: hosts run what the ledger says; prod only the digest that passed test",
            "critical",
            (_A831, "A.8.32"),
        ),
        Control(
            "CHG-2",
            "Every production deploy was approved by someone other than the release's author",
            "critical",
            (_A831, "A.8.32", "A.5.3"),
        ),
        Control(
            "CHG-3",
            "Production changes only through the deploy process; hand edits are detected",
            "high",
            (_A831, "A.8.32", "A.8.9"),
        ),
        Control(
            "CHG-4", "Every release has a tamper-evident record (chained, signed ledger)", "high", (_A831, "A.8.32")
        ),
        Control(
            "DATA-1",
            "No live personal data in development or test (scan and production fingerprints)",
            "critical",
            (_A831, "A.8.33", "A.5.34", "A.8.11"),
        ),
        Control(
            "DATA-2",
            "Development holds synthetic data, test anonymised data; provenance recorded",
            "high",
            (_A831, "A.8.33", "A.8.11"),
        ),
        Control(
            "DATA-3",
            "Every copy of production data into test is authorised and scrubbed by its deadline",
            "high",
            (_A831, "A.8.33", "A.5.3"),
        ),
        Control("LOG-1", "Production logs logins and privileged commands", "high", (_A831, "A.8.15")),
        Control(
            "NET-4",
            "A network diagram generated from live state shows the boundaries and matches the declaration",
            "medium",
            (_A831, "A.8.20", "A.8.22"),
        ),
        Control(
            "ACC-7",
            "A recorded, unexpired exception approved by someone other than its requester, with compensating controls",
            "high",
            (_A831, "A.5.3", "A.5.36"),
        ),
        Control(
            "DOC-1",
            "An evidence pack for the auditor: results, diagram, matrices, releases, waivers, policy; signed",
            "medium",
            (_A831, "A.5.37", "A.5.33"),
        ),
    )
}
