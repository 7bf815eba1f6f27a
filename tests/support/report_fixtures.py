"""Shared by the report's unit tests: the example site, a recorded verify run, a pack built from them."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from helpers import EXAMPLE
from verify_runs import shared_state, write_run

from provisioner.backends.base import Attachment
from provisioner.report import access_matrix, collect, releases
from provisioner.site.load import load_site
from provisioner.site.model import Site
from provisioner.workspace.site_state import SiteState

RESULTS = Path(__file__).resolve().parents[1] / "data" / "report" / "results.json"
TODAY = dt.date(2026, 11, 24)


def example_site(**changes: Any) -> Site:
    return load_site(EXAMPLE).model.model_copy(update=changes)


def recorded_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


def live_as_declared(site: Site) -> list[Attachment]:
    legs = [Attachment(e.name, "gateway", str(e.segment.gateway), True) for e in site.environments]
    legs += [Attachment(a.name, "gateway", str(a.gateway_address), True) for a in site.access_networks]
    legs.append(Attachment("mgmt", "gateway", str(site.management.gateway), True))
    return [Attachment(h.environment, h.name, str(h.address), True) for h in site.hosts] + legs


def build_report(
    site: Site | None = None,
    payload: dict[str, Any] | None = None,
    attachments: list[Attachment] | None = None,
    evidence_dir: Path | None = None,
    history: list[dict[str, Any]] | None = None,
    unreadable: dict[str, str] | None = None,
    state: SiteState | None = None,
) -> dict[str, Any]:
    """The report of a recorded verify run, signed with `state`'s evidence key (the key that signs the pack: pass
    the state the pack is written with) and read back through the report's own check of its signature."""
    site = site or example_site()
    state = state or shared_state()
    written = write_run(state, payload or recorded_results())
    run = collect.load_results(state, written.folder)
    segments = {e.name for e in site.environments} | {a.name for a in site.access_networks} | {"mgmt"}
    matrix = access_matrix.build_matrix(site, {}, unreadable or {}, None)
    ledger = releases.read_ledger(evidence_dir or Path("/nonexistent"))
    return collect.assemble(
        site, run, segments,
        live_as_declared(site) if attachments is None else attachments, matrix, ledger, history or [], today=TODAY,
    )  # fmt: skip


# ---- signed decisions ---------------------------------------------------------------------------------------
DECISION_NAMESPACE = "provision-decision"


def make_key(folder: Path, name: str) -> tuple[Path, str]:
    """A throwaway ed25519 key pair; returns the private key's path and the public key line."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@tests", "-f", str(key)], check=True)
    return key, Path(f"{key}.pub").read_text().strip()


def sign_statement(key: Path, statement: str) -> str:
    """What a person's `ssh-keygen -Y sign -n provision-decision` makes of a statement: the armored signature."""
    result = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-q", "-f", str(key), "-n", DECISION_NAMESPACE],
        input=statement.encode(), capture_output=True, check=True,
    )  # fmt: skip
    return result.stdout.decode()


def statement_for(entry: dict[str, Any]) -> str:
    """A statement as a person signs it (the real wording is the release package's): non-ASCII on purpose, so the
    pack must keep its exact UTF-8 bytes."""
    return (
        f"provision decision\nsite: example\nrelease: {entry['release']}\ndigest: {entry['digest']}\n"
        f"decision: {entry['event']}\nenvironment: {entry.get('env', 'prod')}\ntime: {entry['time']}\n"
        "note: approuvé — four eyes\n"
    )


def signed_decision_ledger(evidence_dir: Path, keys_dir: Path) -> tuple[Site, dict[str, str]]:
    """A ledger in `evidence_dir` whose create (by bob) and approve (by erin) entries carry a statement signed with
    the person's own throwaway key; the site lists erin's key, while bob's signing key is not (any more) in it.
    Returns the site and the public key of each signer."""
    erin_key, erin_public = make_key(keys_dir, "erin")
    bob_key, bob_public = make_key(keys_dir, "bob")
    site = example_site()
    people = [p.model_copy(update={"ssh_key": erin_public}) if p.name == "erin" else p for p in site.people]
    site = site.model_copy(update={"people": people})
    digest = "sha256:" + "b" * 64
    entries: list[dict[str, Any]] = [
        {"seq": 1, "time": "2026-11-02T09:00:00Z", "event": "create", "release": "r1", "actor": "bob",
         "digest": digest, "artifact": "shop-1.1.tar.gz", "result": "ok"},
        {"seq": 2, "time": "2026-11-02T09:10:00Z", "event": "deploy", "release": "r1", "actor": "deploy", "env": "dev",
         "digest": digest, "result": "ok"},
        {"seq": 3, "time": "2026-11-02T09:20:00Z", "event": "deploy", "release": "r1", "actor": "deploy",
         "env": "test", "digest": digest, "result": "ok"},
        {"seq": 4, "time": "2026-11-02T11:00:00Z", "event": "approve", "release": "r1", "actor": "erin",
         "digest": digest, "result": "ok"},
    ]  # fmt: skip
    for entry, (name, key, public) in ((entries[0], ("bob", bob_key, bob_public)),
                                       (entries[3], ("erin", erin_key, erin_public))):  # fmt: skip
        statement = statement_for(entry)
        entry.update(statement=statement, signature=sign_statement(key, statement), signer=name, signer_key=public)
    evidence_dir.mkdir(parents=True, exist_ok=True)
    (evidence_dir / "releases.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    return site, {"bob": bob_public, "erin": erin_public}


# ---- an auditor's check of a pack, with stock tools only ----------------------------------------------------------
def verify_md_commands(folder: Path) -> list[str]:
    """Every line of every ```sh block of the pack's VERIFY.md, as written."""
    text = (folder / "VERIFY.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def run_in(folder: Path, command: str) -> subprocess.CompletedProcess[str]:
    """One command as the auditor's shell runs it, from inside the pack's folder."""
    return subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=60)


def signed_waiver_ledger(evidence_dir: Path, site: Site) -> None:
    """A ledger in `evidence_dir` in which each waiver's approver signed it with their demo key (as
    `provision waiver approve` records it), after a `keys` entry listing the site's keys."""
    from provisioner.releases import decisions

    demo_keys = Path(__file__).resolve().parents[2] / "inventories" / "example" / "demo-keys"
    entries: list[dict[str, Any]] = [{"seq": 1, "time": "2026-11-01T09:00:00.000000Z", "event": "keys",
                                      "actor": "site file", "people": decisions.site_keys(site)}]  # fmt: skip
    for waiver in site.waivers:
        statement = decisions.Statement(site.site, "waiver-approve", waiver.id, decisions.waiver_digest(waiver),
                                        waiver.environment or "-", waiver.approver, decisions.now())  # fmt: skip
        signature = decisions.sign_here(statement, demo_keys / waiver.approver)
        public = decisions.person_key(site, waiver.approver)
        entries.append({"seq": len(entries) + 1, "time": "2026-11-01T10:00:00.000000Z", "event": "waiver-approve",
                        "subject": waiver.id, "actor": waiver.approver, "digest": decisions.waiver_digest(waiver),
                        **decisions.entry_fields(statement, signature, public)})  # fmt: skip
    evidence_dir.mkdir(parents=True, exist_ok=True)
    (evidence_dir / "releases.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
