"""The Secure Development Policy as its own document, generated from the site file (A.8.31, with A.8.32, A.8.33
and A.5.3): environments and their purpose, who may access what, data rules, the path to live, approvals,
exceptions and emergency fixes — in plain English for staff and auditors.

The document is a list of blocks (headings, paragraphs, lists, tables) as plain data, rendered to Markdown and
to HTML (which the PDF is made from): one text, two formats. It is in every evidence pack (policy.md,
policy.pdf) and printed by `provision policy`.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.site.model import Site
from provisioner.site.policy import access_level, deploy_envs
from provisioner.site.vocabulary import DEFAULT_ACCESS, PEOPLE_ROLES, TIERS

Block = dict[str, Any]

TITLE = "Secure Development Policy"
TIER_PURPOSE = {
    "development": "where software is built and tried out",
    "test": "where a release is verified before it goes live",
    "production": "the live service, used by customers, holding their data",
}
DATA_RULE = {
    "dummy": "synthetic (made-up) data only, made reproducibly by `provision data seed`; never a copy of real data",
    "anonymised": "anonymised data only: synthetic data, or a copy of production passed through the anonymiser "
    "under a recorded authorisation and scrubbed by its deadline",
    "live": "real, live data, including customers' personal data; it stays in this environment",
}
LEVEL_WORDS = {"none": "no access", "login": "log in without administrator rights", "sudo": "full rights (sudo)"}
CELL_WORDS = {"none": "—", "login": "log in", "sudo": "full rights (sudo)"}
ROLE_PLURAL = {"developer": "Developers", "tester": "Testers", "admin": "Administrators", "approver": "Approvers"}


def _heading(text: str, level: int = 2) -> Block:
    return {"kind": "heading", "level": level, "text": text}


def _para(text: str) -> Block:
    return {"kind": "paragraph", "text": text}


def _bullets(items: list[str]) -> Block:
    return {"kind": "list", "items": items}


def _table(head: list[str], rows: list[list[str]]) -> Block:
    return {"kind": "table", "head": head, "rows": rows}


def _names(names: list[str], none: str = "nobody") -> str:
    if not names:
        return none
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _who(site: Site, name: str) -> str:
    person = site.person(name)
    return f"{name} ({person.full_name})" if person is not None and person.full_name else name


def hotfix_rule(site: Site) -> Any:
    """The site file's optional `releases.hotfix` section, or None. Read defensively: the setting is newer than
    this document, and may be a model or a plain mapping."""
    return getattr(site.releases, "hotfix", None)


def _hotfix_hours(rule: Any) -> Any:
    if isinstance(rule, dict):
        return rule.get("approvals_within_hours")
    return getattr(rule, "approvals_within_hours", None)


def build(site: Site, source: str = "") -> list[Block]:
    """The policy's blocks, from the site file (`source` says which file, for the reader)."""
    blocks: list[Block] = [_heading(f"{TITLE} — {site.description or 'site ' + site.site}", 1)]
    intro = (
        f"Site `{site.site}`. This policy says how development, test and production are kept apart, as ISO/IEC "
        "27001:2022 Annex A 8.31 asks (with A.8.32 change management, A.8.33 test information and A.5.3 "
        "segregation of duties). It is generated from the site file"
        + (f" ({source})" if source else "")
        + ": the file is the source, so a change to the rules is a change to that file. The provisioner tool "
        "configures the hosts and the networks from the same file, `provision verify` checks on the live systems "
        "that every rule holds, and `provision report` produces the evidence."
    )
    blocks.append(_para(intro))
    blocks += _environments(site)
    blocks += _access(site)
    blocks += _data(site)
    blocks += _path_to_live(site)
    blocks += _approvals(site)
    blocks += _exceptions(site)
    blocks += _emergency_fixes(site)
    blocks += _checks()
    return blocks


def _environments(site: Site) -> list[Block]:
    rows = []
    for env in site.environments:
        hosts = [h.name for h in site.hosts_in(env.name)]
        rows.append(
            [
                env.name,
                env.tier,
                env.description or TIER_PURPOSE[env.tier],
                f"VLAN {env.segment.vlan}, {env.segment.cidr}",
                env.colour,
                ", ".join(hosts) or "none yet",
            ]
        )
    flows = [
        f"{f.from_env} → {f.to_env}: {f.proto} port(s) {', '.join(str(p) for p in f.ports)}"
        + (f" to hosts with the role {', '.join(f.to_roles)}" if f.to_roles else "")
        + (f" ({f.description})" if f.description else "")
        for f in site.flows
    ]
    return [
        _heading("1. Environments and their purpose"),
        _para(
            f"The site has {len(site.environments)} environments. Each has its own network segment and subnet; "
            "no machine sits in two. Every host announces its environment at login, in its shell prompt and — for "
            "web pages outside production — in a banner, in the environment's colour."
        ),
        _table(["environment", "kind", "purpose", "network", "colour", "hosts"], rows),
        _para(
            "Traffic between environments is refused at the environment gateway unless it is listed here; nothing "
            "in development or test may open a connection into production. Hosts accept administration (SSH) only "
            f"from the management network {site.management.cidr}"
            + (" and from the access networks below that reach their environment." if site.access_networks else ".")
        ),
        _bullets(flows or ["No connection between environments is allowed."]),
        *_access_networks(site),
    ]


def _access_networks(site: Site) -> list[Block]:
    """Where people's workstations are, and what each network reaches (issue 18)."""
    management = (
        f"The management network {site.management.cidr} is for the provisioning controller and the administrators "
        "only: it reaches every host, production included."
    )
    if not site.access_networks:
        return [
            _para(
                management + " The site declares no access network (a network for people's workstations), so "
                "anyone who administers a host does so from the management network."
            )
        ]
    rows = [
        [
            a.name,
            str(a.cidr),
            "administrators only" if a.admins_only else "developers, testers and administrators",
            ", ".join(a.reaches),
            a.description or "—",
        ]
        for a in site.access_networks
    ]
    admins_only = [a.name for a in site.access_networks if a.admins_only]
    admins = [_who(site, p.name) for p in site.people if "admin" in p.roles]
    rule = (
        "People's workstations sit on access networks. From an access network a workstation reaches the hosts of "
        "the environments it names over SSH, and nothing else: no other port, no other environment, not the "
        "management network and not the gateway itself. Who may then log in is still decided by section 2. An "
        "access network that developers or testers sit on never reaches production."
    )
    if admins_only:
        rule += (
            f" {_names(admins_only)} {'is' if len(admins_only) == 1 else 'are'} for people with the administrator "
            f"role alone ({_names(admins, 'nobody holds it')}): nobody else may connect a workstation there, as "
            f"{'it reaches' if len(admins_only) == 1 else 'they reach'} production."
        )
    return [
        _para(management + " " + rule),
        _table(["access network", "network", "who sits there", "reaches (SSH only)", "purpose"], rows),
    ]


def _access(site: Site) -> list[Block]:
    envs = site.environments
    rules = []
    for role in PEOPLE_ROLES:
        parts = [f"{LEVEL_WORDS[DEFAULT_ACCESS[role][tier]]} in {tier}" for tier in TIERS]
        rules.append(f"{ROLE_PLURAL[role]}: {', '.join(parts)}.")
    rows = []
    for person in site.people:
        cells = []
        for env in envs:
            level = access_level(site, person, env)
            grant = next((g for g in person.access if g.environment == env.name and g.level == level), None)
            by_waiver = f" (by exception {grant.waiver})" if grant is not None and grant.waiver else ""
            cells.append(CELL_WORDS[level] + by_waiver)
        rows.append([_who(site, person.name), ", ".join(person.roles), *cells])
    if site.deploy is not None:
        deploys = set(deploy_envs(site))
        rows.append(
            [f"{site.deploy.name} (automation)", "deploy identity"]
            + ["deploys releases" if env.name in deploys else "—" for env in envs]
        )
    return [
        _heading("2. Who may access what"),
        _para("Access follows a person's roles; the same rule holds on every host of an environment:"),
        _bullets(rules),
        _para(
            "The access matrix below is what the hosts are configured with. Anything beyond a role's default is an "
            "exception (section 6). Nobody logs in as root, and no host accepts passwords over SSH: access is by "
            "each person's own SSH key only."
        ),
        _table(["person", "roles", *[env.name for env in envs]], rows),
    ]


def _data(site: Site) -> list[Block]:
    rows = [[env.name, env.data, DATA_RULE[env.data]] for env in site.environments]
    authorisations = [
        [a.id, f"{a.from_env} → {a.to_env}", _who(site, a.requester), _who(site, a.approver), a.reason,
         a.scrub_by.isoformat()]
        for a in site.test_data.authorisations
    ]  # fmt: skip
    blocks = [
        _heading("3. Data rules"),
        _table(["environment", "data", "what that means"], rows),
        _para(
            "Personal data from production never reaches development. Copying production data into test needs "
            "a recorded authorisation, requested by one person and approved by another; the copy passes through "
            "the anonymiser and is removed (`provision data scrub`) by the authorisation's deadline. Development "
            "and test are scanned for personal data, and every database there must show where its data came from."
        ),
    ]
    if authorisations:
        blocks.append(
            _table(["authorisation", "copy", "requested by", "approved by", "reason", "scrub by"], authorisations)
        )
    else:
        blocks.append(_para("No copy of production data is authorised."))
    return blocks


def _path_to_live(site: Site) -> list[Block]:
    path = list(site.releases.path)
    prod = [e for e in path if site.environment(e).tier == "production"]
    before_prod = path[path.index(prod[0]) - 1] if prod and path.index(prod[0]) > 0 else path[0]
    deployer = (
        f"the deploy identity `{site.deploy.name}`, never by a person's own account"
        if site.deploy is not None
        else "the release process only, never by hand"
    )
    return [
        _heading("4. The path to live"),
        _para(f"Software reaches production along one path: {' → '.join(path)}."),
        _bullets(
            [
                "A release is recorded when it is created (`provision release create`): the SHA-256 digest of its "
                "artifact and who built it.",
                f"It is deployed to each environment of the path in turn, by {deployer}. It cannot skip an "
                "environment, and nothing moves backwards: to undo a change, make a new release.",
                f"Production takes only the artifact with the same digest that ran in {before_prod} and passed "
                f"`provision verify` there after it was deployed.",
                "Every step is written to the release record, a hash-chained and signed ledger, so the record "
                "cannot be changed unnoticed. A change made by hand in production is detected and undone by the "
                "next deploy.",
            ]
        ),
    ]


def _approvals(site: Site) -> list[Block]:
    required = site.releases.required_approvals
    approvers = [_who(site, p.name) for p in site.people if "approver" in p.roles]
    return [
        _heading("5. Approvals"),
        _para(
            f"Before a release is deployed to production it needs {required} approval{'' if required == 1 else 's'} "
            "(`provision release approve`) by someone other than its author: nobody approves their own work. "
            f"Approvals are given by the people holding the approver role: {_names(approvers)}."
        ),
    ]


def _exceptions(site: Site) -> list[Block]:
    rows = []
    for w in site.waivers:
        control = CONTROLS.get(w.control)
        scope = w.scope_words()
        rows.append(
            [
                w.id,
                f"{w.control}: {control.title}" if control else w.control,
                scope,
                w.justification,
                _who(site, w.requester),
                _who(site, w.approver),
                w.risk,
                w.expires.isoformat(),
                "; ".join(w.compensating) or "none recorded",
            ]
        )
    blocks = [
        _heading("6. Exceptions"),
        _para(
            "A rule is set aside only by a recorded exception (a waiver in the site file). It names the control "
            "and, where it applies, the person, the environment, the host, or for network paths the source, "
            "destination and port; a check's result is set aside only when every failure in it lies inside that "
            "scope. It gives the reason, the risk and the compensating controls; it is approved by someone other "
            "than the person who asked for it (and not by a developer or tester of the environment concerned); and "
            "it expires. An expired exception no longer counts: the check it covered fails again. Two rules have "
            "no exception in production: nothing enters or leaves production but the declared flows (NET-2), and a "
            "developer's key is refused by every production host (ACC-2). A result set aside by an exception is "
            "reported as an accepted risk, never as passed."
        ),
    ]
    head = ["exception", "control", "for", "reason", "requested by", "approved by", "risk", "expires", "compensation"]
    blocks.append(_table(head, rows) if rows else _para("There are no exceptions: every rule applies in full."))
    return blocks


def _emergency_fixes(site: Site) -> list[Block]:
    rule = hotfix_rule(site)
    blocks = [_heading("7. Emergency fixes")]
    if rule is None:
        blocks.append(
            _para(
                "No emergency-fix rule is declared: every fix takes the normal path — through test, verified "
                "there, and approved before it reaches production."
            )
        )
        return blocks
    hours = _hotfix_hours(rule)
    timing = (
        f"its approvals may follow within {hours} hour(s) of the production deploy instead of before it; "
        "a hotfix whose approvals do not arrive in time fails CHG-2 until they do"
        if hours
        else "its approvals follow the rule declared in the site file (releases.hotfix)"
    )
    blocks.append(
        _para(
            "An emergency fix (hotfix) is recorded as such and takes the same path to live: it is deployed to "
            f"test and must pass verification there before production. Only the timing of approval differs: {timing}. "
            "The evidence pack lists every hotfix separately."
        )
    )
    return blocks


def _checks() -> list[Block]:
    return [
        _heading("8. How the rules are checked"),
        _para(
            "`provision verify` checks these controls on the live systems, where possible by attempting what must "
            "fail; `provision report` puts the results, with this policy, into a signed evidence pack:"
        ),
        _bullets([f"{cid}: {control.title}" for cid, control in CONTROLS.items()]),
    ]


def source_of(path: Path) -> str:
    """How the document names its site file: folder and name, and the SHA-256 of its bytes."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"{path.parent.name}/{path.name}"
    return f"{path.parent.name}/{path.name}, SHA-256 {digest}"


# ---- rendering ----------------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block["kind"]
        if kind == "heading":
            out.append("#" * block["level"] + " " + block["text"])
        elif kind == "paragraph":
            out.append(block["text"])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block["items"]))
        elif kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in block["head"]) + " |"]
            lines.append("|" + "---|" * len(block["head"]))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block["rows"]]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escaped text, with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


STYLE = """
@page { size: A4; margin: 1.8cm 1.5cm; }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10pt; color: #222; line-height: 1.35; }
h1 { font-size: 17pt; } h2 { font-size: 13pt; border-bottom: 2px solid #444; margin-top: 1.4em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 2px 5px; text-align: left; vertical-align: top; font-size: 8.5pt; }
th { background: #eee; }
table { table-layout: fixed; }
p, li, th, td, code { overflow-wrap: break-word; }
"""


def to_html(blocks: list[Block]) -> str:
    title = next((b["text"] for b in blocks if b["kind"] == "heading"), TITLE)
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
    ]
    for block in blocks:
        kind = block["kind"]
        if kind == "heading":
            parts.append(f"<h{block['level']}>{_inline(block['text'])}</h{block['level']}>")
        elif kind == "paragraph":
            parts.append(f"<p>{_inline(block['text'])}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block["items"]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in block["head"])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block["rows"])
            parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)
