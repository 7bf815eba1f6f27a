"""Decisions signed by the people who made them, and what an auditor needs to check them with stock OpenSSH.

A ledger entry of a signed decision (a release created, approved, a waiver approved, a data refresh authorised)
carries `statement` (the text the person signed), `signature` (their armored OpenSSH signature, namespace
`provision-decision`), `signer` (their name) and `signer_key` (the public key line they signed with). The pack
holds each statement and signature as files under `decisions/`, an `allowed_signers` file naming the evidence key
and the people's keys, and `VERIFY.md`: the `sha256sum` and `ssh-keygen -Y verify` commands that check the pack
from inside its folder, without this tool.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from provisioner.conformance.history import NAMESPACE as HISTORY_NAMESPACE
from provisioner.conformance.signed_results import NAMESPACE as RESULTS_NAMESPACE
from provisioner.releases.decisions import NAMESPACE
from provisioner.report import run_files
from provisioner.report.manifest import NAMESPACE as REPORT_NAMESPACE
from provisioner.site.model import USER_RE, Site
from provisioner.site.sshkeys import parse_public_key
from provisioner.workspace import signing

DECISION_NAMESPACE = NAMESPACE  # the namespace people sign decisions in (releases.decisions)
# what the evidence key signs in a pack: the manifest, the verify run's results, the history's entries
EVIDENCE_NAMESPACES = f"{REPORT_NAMESPACE},{RESULTS_NAMESPACE},{HISTORY_NAMESPACE}"
FOLDER = "decisions"
ALLOWED_SIGNERS = "allowed_signers"
VERIFY_FILE = "VERIFY.md"
FIELDS = ("statement", "signature", "signer", "signer_key")
ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"


def _file_part(value: object) -> str:
    """A ledger value as part of a file name: letters, digits, '.', '_' and '-' only."""
    text = re.sub(r"[^A-Za-z0-9._-]", "_", str(value))[:64].strip(".")
    return text or "_"


def signed_decisions(entries: list[dict[str, Any]], site: Site) -> tuple[list[dict[str, Any]], list[str]]:
    """The ledger's signed decisions, each verified against the key it names; and why entries that look signed
    but cannot be checked were left out."""
    decisions: list[dict[str, Any]] = []
    left_out: list[str] = []
    fingerprints: dict[str, str] = {}
    for entry in entries:
        if not any(field in entry for field in FIELDS):
            continue
        seq = entry.get("seq")
        where = f"ledger entry {seq}" if isinstance(seq, int) else "a ledger entry without a sequence number"
        missing = [f for f in FIELDS if not isinstance(entry.get(f), str) or not entry.get(f)]
        if missing or not isinstance(seq, int):
            left_out.append(f"{where}: no {', '.join(missing) or 'sequence number'}; its signature cannot be checked")
            continue
        signer, signature = entry["signer"], entry["signature"]
        if not re.fullmatch(USER_RE, signer):
            left_out.append(f"{where}: signer {signer[:40]!r} is not a person's name")
            continue
        try:
            key = parse_public_key(entry["signer_key"]).text
        except ValueError as exc:
            left_out.append(f"{where}: signer_key is not usable ({exc})")
            continue
        if not signature.lstrip().startswith(ARMOR_BEGIN):
            left_out.append(f"{where}: signature is not an armored SSH signature")
            continue
        statement = entry["statement"]
        try:
            data = statement.encode("utf-8")
        except UnicodeEncodeError:
            left_out.append(f"{where}: the statement is not valid UTF-8 text")
            continue
        problem = signing.verify(key, signer, data, signature, DECISION_NAMESPACE)
        person = site.person(signer)
        if key not in fingerprints:
            fingerprints[key] = signing.fingerprint(key)
        stem = f"{FOLDER}/{seq:04d}-{_file_part(entry.get('event', ''))}-{_file_part(entry.get('release', ''))}"
        decisions.append(
            {
                "seq": seq,
                "time": str(entry.get("time", "")),
                "event": str(entry.get("event", "")),
                "release": str(entry.get("release", "")),
                "env": str(entry.get("env", "")),
                "signer": signer,
                "signer_key": key,
                "fingerprint": fingerprints[key],
                "statement": statement,
                "signature": signature,
                "verified": problem is None,
                "problem": (problem or "").splitlines()[0] if problem else "",
                "key_in_site_file": person is not None and parse_public_key(person.ssh_key).text == key,
                "statement_file": f"{stem}.txt",
                "signature_file": f"{stem}.sig",
            }
        )
    return decisions, left_out


def people_keys(site: Site) -> list[dict[str, str]]:
    """Each person's name and key (type and data, without the comment) as the site file lists them."""
    return [{"name": p.name, "key": parse_public_key(p.ssh_key).text} for p in site.people]


def allowed_signers(
    evidence_identity: str, evidence_key: str, people: list[dict[str, str]], decisions: list[dict[str, Any]]
) -> str:
    """OpenSSH allowed_signers: the evidence key for the manifest and the verify run's results; each person's key
    from the site file, and any other key a decision was signed with, for decisions."""
    lines = [
        "# Who may sign what in this pack (OpenSSH allowed_signers format; see VERIFY.md).",
        f'{evidence_identity} namespaces="{EVIDENCE_NAMESPACES}" {parse_public_key(evidence_key).text}',
    ]
    seen: set[tuple[str, str]] = set()
    for person in people:
        seen.add((person["name"], person["key"]))
        lines.append(f'{person["name"]} namespaces="{DECISION_NAMESPACE}" {person["key"]}')
    others = [d for d in decisions if (d["signer"], d["signer_key"]) not in seen]
    if others:
        lines.append("# keys that signed decisions in the ledger and that the site file does not list (any more)")
    for decision in others:
        pair = (decision["signer"], decision["signer_key"])
        if pair not in seen:
            seen.add(pair)
            lines.append(f'{pair[0]} namespaces="{DECISION_NAMESPACE}" {pair[1]}')
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _verify_command(signer: str, namespace: str, signature_file: str, data_file: str) -> str:
    q = shlex.quote
    return (
        f"ssh-keygen -Y verify -f {ALLOWED_SIGNERS} -I {q(signer)} -n {namespace} -s {q(signature_file)} "
        f"< {q(data_file)}"
    )


def verify_instructions(
    report: dict[str, Any],
    manifest: str,
    signature: str,
    public_key_file: str,
    left_out: list[str],
    more_steps: list[str] | None = None,
) -> str:
    """VERIFY.md: how an auditor checks this pack with sha256sum and ssh-keygen alone, from inside its folder.
    Every command sits on its own line in a ```sh block; `more_steps` (lines) come last."""
    key = report["evidence_key"]
    decisions: list[dict[str, Any]] = report.get("decisions", [])
    out = [
        f"# Verifying this evidence pack without the provisioner tool — site {report['site']}",
        "",
        f"Generated {report['generated']}. You need `sha256sum` (GNU coreutils) and `ssh-keygen` (OpenSSH 8.2 or "
        "later). Run every command below in a shell, from inside this folder; each must succeed (exit status 0).",
        "",
        "## 1. Pin the evidence key",
        "",
        f"The pack is signed by the site's evidence key, `{key['identity']}`, whose fingerprint is:",
        "",
        f"    {key['fingerprint']}",
        "",
        "A copy of the key travels with the pack, so compare this fingerprint with the one you were given "
        "when the key was created, or by an earlier report, through another channel than this pack (the "
        "provisioner tool prints it on both occasions). The signature check in step 3 prints the fingerprint "
        "of the key that actually signed; it must be the one you pinned.",
        "",
        "## 2. Every file is as it was written",
        "",
        f"`{manifest}` lists every other file of the pack with its SHA-256; every line of the output must end "
        f"in `OK`. (`{manifest}` and `{signature}` are the only files not listed: step 3 checks them.)",
        "",
        "```sh",
        f"sha256sum -c {manifest}",
        "```",
        "",
        "## 3. The manifest is signed by the evidence key",
        "",
        "```sh",
        _verify_command(key["identity"], REPORT_NAMESPACE, signature, manifest),
        "```",
        "",
        f'Expected output: `Good "{REPORT_NAMESPACE}" signature for {key["identity"]} with ED25519 key '
        f"{key['fingerprint']}`. The key is taken from `{ALLOWED_SIGNERS}` (the same key as "
        f"`{public_key_file}`); both files are listed in the manifest.",
        "",
        *_results_step(report),
        "## 5. Decisions signed by the people who made them",
        "",
    ]
    if decisions:
        out += [
            f"Each decision in `{FOLDER}/` is a statement (`.txt`, the exact bytes that were signed) and the "
            "signature its author made with their own SSH key (`.sig`). "
            f"`{ALLOWED_SIGNERS}` lists each person's key as the site file declares it (and any other key a "
            "decision was signed with); the output of each command names the key's fingerprint.",
            "",
            "| decision | release | signer | key fingerprint | key listed in the site file now |",
            "|---|---|---|---|---|",
            *(
                f"| {d['seq']} {_cell(d['event'])} | {_cell(d['release'])} | {d['signer']} | {d['fingerprint']} | "
                f"{'yes' if d['key_in_site_file'] else 'no'} |"
                for d in decisions
            ),
            "",
            "```sh",
            *(
                _verify_command(d["signer"], DECISION_NAMESPACE, d["signature_file"], d["statement_file"])
                for d in decisions
            ),
            "```",
        ]
    else:
        out.append("The release ledger holds no signed decisions: there is nothing to check in this step.")
    if left_out:
        out += ["", "Ledger entries that look signed but could not be included (the report lists them too):", ""]
        out += [f"- {reason}" for reason in left_out]
    if more_steps:
        out += ["", *more_steps]
    return "\n".join(out) + "\n"


def _results_step(report: dict[str, Any]) -> list[str]:
    """Step 4 of VERIFY.md: the verify run's results.json is the one `provision verify` signed, and the one the
    report names (by its SHA-256)."""
    run = report.get("verify_results")
    out = ["## 4. The conformance results are the ones `provision verify` signed", ""]
    if not run or not run_files.files(report):
        return [*out, "This pack holds no signed verify run: there is nothing to check in this step.", ""]
    key = report["evidence_key"]
    results, signature = run_files.paths(run["run"])
    hex_digest = run["digest"].removeprefix("sha256:")
    return [
        *out,
        f"The report was made from verify run `{run['run']}` (finished {run['finished']}). `provision verify` "
        f"signed its `results.json` with the evidence key when it wrote it (namespace `{RESULTS_NAMESPACE}`); "
        f"both are in `{run_files.FOLDER}/{run['run']}/`. The first command checks that signature, the second "
        f"that this is the file the report names (SHA-256 `{run['digest']}`).",
        "",
        "```sh",
        _verify_command(key["identity"], RESULTS_NAMESPACE, signature, results),
        f"echo {shlex.quote(f'{hex_digest}  {results}')} | sha256sum -c -",
        "```",
        "",
        f'Expected output: `Good "{RESULTS_NAMESPACE}" signature for {key["identity"]} with ED25519 key '
        f"{key['fingerprint']}`, then `{results}: OK`.",
        "",
    ]
