"""Decisions signed by the person who makes them (CHG-2, ACC-7, DATA-3): a canonical statement, an OpenSSH
signature over it made with that person's own key (the public key the site file lists), checked before it is
recorded and again by every verify.

A statement is plain text, one `key: value` per line, so a person can read what they sign and sign it on their
own machine with stock OpenSSH:

    provision decision v1
    site: example
    decision: approve
    subject: r2
    digest: sha256:…
    environment: prod
    person: erin
    time: 2026-12-04T21:00:00Z

and anyone can check it with `ssh-keygen -Y verify -n provision-decision` and an allowed_signers file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

from provisioner.errors import InputError, RefusedError, shown
from provisioner.releases.identity import private_copy
from provisioner.site.model import DataAuthorisation, Site, Waiver
from provisioner.site.sshkeys import parse_public_key
from provisioner.workspace import signing

NAMESPACE = "provision-decision"
HEADER = "provision decision v1"
DECISIONS = ("create", "create-hotfix", "approve", "waiver-approve", "data-authorise")
MAX_AGE = dt.timedelta(hours=24)  # a statement signed offline is recorded within a day, or signed again
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Statement:
    site: str
    decision: str
    subject: str  # release id (or "new" for a release being created), waiver id, authorisation id
    digest: str  # what is decided on: the artifact's digest, or the waiver's / authorisation's content digest
    environment: str  # where it takes effect ("-" when nowhere in particular)
    person: str
    time: str  # UTC, seconds: 2026-12-04T21:00:00Z

    def text(self) -> str:
        return HEADER + "\n" + "".join(f"{f.name}: {getattr(self, f.name)}\n" for f in fields(self))

    @classmethod
    def parse(cls, text: str, where: str) -> Statement:
        lines = text.splitlines()
        if not lines or lines[0] != HEADER:
            raise InputError(f"{where}: not a decision statement (its first line must be '{HEADER}')")
        values: dict[str, str] = {}
        for line in lines[1:]:
            key, sep, value = line.partition(": ")
            if not sep or key in values:
                raise InputError(f"{where}: line {shown(line)} is not one 'key: value' of a statement")
            values[key] = value
        names = [f.name for f in fields(cls)]
        if sorted(values) != sorted(names):
            raise InputError(f"{where}: a statement holds exactly the keys {', '.join(names)}")
        statement = cls(**values)
        if statement.text() != text:
            raise InputError(f"{where}: not in canonical form (keys in order, one newline at the end)")
        return statement

    def when(self) -> dt.datetime:
        try:
            return dt.datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise InputError(f"statement time {shown(self.time)}: allowed: YYYY-MM-DDTHH:MM:SSZ (UTC)") from None


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def person_key(site: Site, person: str) -> str:
    """The person's public key as the site file lists it now, as '<type> <base64>'."""
    who = site.person(person)
    if who is None:
        raise InputError(f"{shown(person)} is not a person of site '{site.site}'")
    return parse_public_key(who.ssh_key).text


def sign_here(statement: Statement, key_file: Path) -> str:
    """Sign with a private key file, or with a public key file whose private half the ssh-agent holds."""
    if not key_file.is_file():
        raise InputError(f"--sign-key {key_file}: no such file; name your private key, or your public key if "
                         "your ssh-agent holds the private one")  # fmt: skip
    with private_copy(key_file) as copy:  # ssh-keygen refuses private keys others can read
        result = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(copy)],
            input=statement.text().encode(),
            capture_output=True,
            check=False,
        )
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise RefusedError(f"--sign-key {key_file}: could not sign ({reason[-1] if reason else 'ssh-keygen failed'})")
    return result.stdout.decode().strip()


def signature_problem(statement: Statement, signature: str, public_key: str) -> str | None:
    """None when `signature` is `statement.person`'s signature over the statement with `public_key`."""
    if "BEGIN SSH SIGNATURE" not in signature:
        return "the signature file is not an SSH signature (ssh-keygen -Y sign writes one)"
    return signing.verify(public_key, statement.person, statement.text().encode(), signature, NAMESPACE)


def check_signed(expected: Statement, statement: Statement, signature: str, public_key: str) -> None:
    """Refuse (exit 3) unless `statement` is `expected` (but for its time), recent, and signed with the key."""
    for field in fields(Statement):
        if field.name == "time":
            continue
        want, got = getattr(expected, field.name), getattr(statement, field.name)
        if want != got:
            raise RefusedError(
                f"the signed statement's {field.name} is {shown(got)}, but this decision's is {shown(want)}: "
                "a signature counts only for the decision it was made for; nothing was recorded"
            )
    signed_at, now_ = statement.when(), dt.datetime.now(dt.UTC)
    if signed_at > now_ + CLOCK_SKEW:
        raise RefusedError(f"the statement is dated {statement.time}, in the future; nothing was recorded")
    if now_ - signed_at > MAX_AGE:
        raise RefusedError(
            f"the statement was signed at {statement.time}, more than {MAX_AGE.total_seconds() / 3600:.0f} hours "
            "ago: sign a fresh one; nothing was recorded"
        )
    problem = signature_problem(statement, signature, public_key)
    if problem is not None:
        raise RefusedError(
            f"the signature is not {statement.person}'s over this statement with the key the site file lists for "
            f"them ({problem.splitlines()[-1]}); nothing was recorded"
        )


def instructions(statement: Statement, command: str) -> str:
    """What to run to sign on one's own machine: the statement goes to stdout, these lines to stderr."""
    name = f"{statement.subject}-{statement.decision}-{statement.person}.txt"
    return (
        f"no signature: {statement.person} signs this decision with their own key (the one the site file lists).\n"
        f"The statement is printed on standard output; to sign it on your own machine:\n"
        f"  {command} > {name}\n"
        f"  ssh-keygen -Y sign -n {NAMESPACE} -f ~/.ssh/id_ed25519 {name}\n"
        f"  {command} --statement {name} --signature {name}.sig\n"
        f"or sign here: {command} --sign-key ~/.ssh/id_ed25519 (or your .pub file, with your ssh-agent)\n"
        "nothing was recorded"
    )


def entry_fields(statement: Statement, signature: str, public_key: str) -> dict[str, str]:
    """What the ledger keeps of a signed decision: an auditor re-checks it with stock OpenSSH."""
    return {
        "statement": statement.text(),
        "signature": signature.strip(),
        "signer": statement.person,
        "signer_key": public_key,
    }


@dataclass(frozen=True)
class Signing:
    """How a person signs: here, with their key file (or their public key and ssh-agent), or on their own machine
    (the statement they signed and the signature file)."""

    key: Path | None = None
    statement: Path | None = None
    signature: Path | None = None


class Unsigned(RefusedError):
    """No signature was given: the statement to sign travels with the refusal (the CLI prints it)."""

    def __init__(self, statement: Statement, message: str):
        self.statement = statement
        super().__init__(message)


def _read(path: Path, option: str) -> str:
    if not path.is_file():
        raise InputError(f"{option} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{option} {path}: cannot be read as text ({exc})") from None


def signed_fields(site: Site, expected: Statement, how: Signing, command: str) -> dict[str, str]:
    """The ledger fields of `expected`, signed as `how` says and checked against the person's key; refused (exit 3)
    with the statement to sign when there is no signature, or when the signature is not theirs over it."""
    public = person_key(site, expected.person)
    if how.key is not None:
        if how.statement is not None or how.signature is not None:
            raise InputError("--sign-key signs here; --statement and --signature bring a signature made elsewhere: "
                             "give one or the other")  # fmt: skip
        statement = Statement(**{**expected.__dict__, "time": now()})
        signature = sign_here(statement, how.key)
    elif how.statement is not None and how.signature is not None:
        statement = Statement.parse(_read(how.statement, "--statement"), str(how.statement))
        signature = _read(how.signature, "--signature")
    elif how.statement is not None or how.signature is not None:
        raise InputError("--statement and --signature go together: the statement signed and its signature file")
    else:
        fresh = Statement(**{**expected.__dict__, "time": now()})
        raise Unsigned(fresh, instructions(fresh, command))
    check_signed(expected, statement, signature, public)
    return entry_fields(statement, signature, public)


# ---- the ledger's record of keys, and every signed decision re-checked against it ----------------------------
KEYS_EVENT = "keys"


def site_keys(site: Site) -> dict[str, str]:
    """Each person's key as the site file lists it now ('<type> <base64>')."""
    return {p.name: parse_public_key(p.ssh_key).text for p in site.people}


def keys_entry(site: Site, entries: list[dict[str, object]]) -> dict[str, object] | None:
    """A `keys` entry when the people's keys differ from the last ones the ledger recorded: the key history that
    later checks verify each decision against (a key removed later still verifies what it signed then)."""
    current = site_keys(site)
    last = next((e.get("people") for e in reversed(entries) if e.get("event") == KEYS_EVENT), None)
    return None if last == current else {"event": KEYS_EVENT, "actor": "site file", "people": current}


def _subject(entry: dict[str, object]) -> str:
    return "new" if entry.get("event") == "create" else str(entry.get("subject") or entry.get("release") or "")


def decision_problems(entries: list[dict[str, object]]) -> dict[int, str]:
    """Every decision entry whose signature does not hold: seq -> why. A decision holds when its statement says
    what the entry records, its key is the one the ledger's key history listed for the person at that point, and
    the signature over the statement verifies with that key."""
    keys: dict[str, str] = {}
    found: dict[int, str] = {}
    for entry in entries:
        event, seq = entry.get("event"), int(str(entry.get("seq", 0)))
        if event == KEYS_EVENT:
            people = entry.get("people")
            keys = {str(k): str(v) for k, v in people.items()} if isinstance(people, dict) else {}
            continue
        if event not in DECISIONS:
            continue
        if not entry.get("statement") or not entry.get("signature"):
            found[seq] = f"{event} by {entry.get('actor')} carries no signature of theirs"
            continue
        try:
            statement = Statement.parse(str(entry["statement"]), f"entry {seq}")
        except InputError as exc:
            found[seq] = str(exc)
            continue
        decision = "create-hotfix" if event == "create" and entry.get("hotfix") else str(event)
        recorded = (decision, _subject(entry), str(entry.get("digest", "")), str(entry.get("actor", "")))
        signed = (statement.decision, statement.subject, statement.digest, statement.person)
        if recorded != signed:
            found[seq] = f"the signed statement says {' '.join(signed)}, the entry records {' '.join(recorded)}"
        elif keys.get(statement.person) != entry.get("signer_key"):
            found[seq] = f"signed with a key the site file did not list for {statement.person} at the time"
        else:
            problem = signature_problem(statement, str(entry["signature"]), str(entry["signer_key"]))
            if problem is not None:
                found[seq] = f"the signature does not verify ({problem.splitlines()[-1]})"
    return found


# ---- waivers (ACC-7): an exception counts only once its approver has signed exactly what the site file says --


def content_digest(item: Waiver | DataAuthorisation) -> str:
    """What an approver signs: the waiver or authorisation as the site file states it (any edit needs a new one)."""
    body = json.dumps(
        item.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


waiver_digest = content_digest


def _signed(entries: list[dict[str, object]], event: str, declared: dict[str, Waiver | DataAuthorisation]) -> set[str]:
    broken = decision_problems(entries)
    found = set()
    for entry in entries:
        if entry.get("event") != event or int(str(entry.get("seq", 0))) in broken:
            continue
        item = declared.get(str(entry.get("subject", "")))
        if item and entry.get("actor") == item.approver and entry.get("digest") == content_digest(item):
            found.add(item.id)
    return found


def signed_waivers(entries: list[dict[str, object]], site: Site) -> set[str]:
    """The ids of the site's waivers whose named approver signed their present content (ledger entries whose
    signatures hold against the key history)."""
    return _signed(entries, "waiver-approve", {w.id: w for w in site.waivers})


def signed_authorisations(entries: list[dict[str, object]], site: Site) -> set[str]:
    """The ids of the site's data-refresh authorisations (DATA-3) their named approver signed as they stand."""
    return _signed(entries, "data-authorise", {a.id: a for a in site.test_data.authorisations})
