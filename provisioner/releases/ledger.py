"""The release ledger: append-only JSON lines, each entry hash-chained to the one before and signed.

Every entry carries `seq` (1, 2, ...), `prev` (the previous entry's hash, 64 zeros for the first), `hash`
(SHA-256 of the entry's canonical JSON without `hash` and `sig`) and `sig` (an OpenSSH signature of that hash
by the site's evidence key, see provisioner.workspace.signing). A signed head file beside the ledger records the last
sequence number and hash, so cutting entries off the end is detected too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.workspace import signing
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState

NAMESPACE = "provision-ledger"
GENESIS = "0" * 64
LEDGER_FILE = "releases.jsonl"
HEAD_FILE = "releases.head.json"


def canonical(entry: dict[str, Any]) -> bytes:
    body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bytes_of(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


@dataclass(frozen=True)
class LedgerProblem:
    line: int  # 0: the ledger as a whole
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class Ledger:
    def __init__(self, state: SiteState):
        self.state = state

    @property
    def path(self) -> Path:
        return self.state.evidence_dir / LEDGER_FILE

    @property
    def head_path(self) -> Path:
        return self.state.evidence_dir / HEAD_FILE

    # ---- reading -------------------------------------------------------------------------------
    def fingerprint(self) -> tuple[bytes, bytes]:
        """The ledger's and its head's bytes as they are now: what a verification was made of."""
        return _bytes_of(self.path), _bytes_of(self.head_path)

    def entries(self) -> list[dict[str, Any]]:
        """The entries as written; callers that act on them verify first (see `problems`)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def problems(self) -> list[LedgerProblem]:
        """Every way the ledger differs from what was appended: edits, reordering, deletions, bad signatures."""
        found: list[LedgerProblem] = []
        public = signing.existing_public_key(self.state)
        signer = signing.identity(self.state)
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        previous, last_seq = GENESIS, 0
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                found.append(LedgerProblem(number, "not a JSON object"))
                continue
            if not isinstance(entry, dict):
                found.append(LedgerProblem(number, "not a JSON object"))
                continue
            if entry.get("seq") != last_seq + 1:
                found.append(
                    LedgerProblem(number, f"sequence {entry.get('seq')} follows {last_seq}: reordered or deleted")
                )
            if entry.get("prev") != previous:
                found.append(
                    LedgerProblem(number, "does not chain to the entry before it (edited, reordered or deleted)")
                )
            digest = entry_hash(entry)
            if entry.get("hash") != digest:
                found.append(LedgerProblem(number, "content does not match its hash: the entry was edited"))
            if public is None:
                found.append(LedgerProblem(number, "no signing key to check the signature with"))
            elif signing.verify(
                public, signer, str(entry.get("hash", "")).encode(), str(entry.get("sig", "")), NAMESPACE
            ):
                found.append(LedgerProblem(number, "signature does not verify"))
            previous = str(entry.get("hash", ""))
            seq = entry.get("seq")
            last_seq = seq if isinstance(seq, int) else last_seq + 1
        found.extend(self._head_problems(len(lines), previous, public, signer))
        return found

    def _head_problems(self, count: int, last_hash: str, public: str | None, signer: str) -> list[LedgerProblem]:
        if not self.head_path.exists():
            return [LedgerProblem(0, "the head record is missing")] if count else []
        try:
            head = json.loads(self.head_path.read_text())
        except ValueError:
            return [LedgerProblem(0, "the head record is not JSON")]
        problems = []
        body = json.dumps({"count": head.get("count"), "hash": head.get("hash")}, sort_keys=True).encode()
        if public is None or signing.verify(public, signer, body, str(head.get("sig", "")), NAMESPACE):
            problems.append(LedgerProblem(0, "the head record's signature does not verify"))
        if head.get("count") == count - 1 and count:
            # an append stopped between its line and its head: the extra entry is chained and signed (checked
            # above), so only the holder of the signing key wrote it; the next append moves the head on
            return problems
        if head.get("count") != count or head.get("hash") != (last_hash if count else GENESIS):
            problems.append(
                LedgerProblem(0, f"the head records {head.get('count')} entries but the ledger holds {count}: "
                              "entries were deleted or added outside the tool")
            )  # fmt: skip
        return problems

    # ---- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time: the rules are checked and the entry appended under the same lock. The lock file
        is opened for appending and never written, so taking the lock changes no file once it exists."""
        self.state.evidence_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state.evidence_dir / ".ledger.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one entry (call inside `locked()`); returns it with seq, time, prev, hash and sig."""
        existing = self.entries()
        self._complete_interrupted_append(existing)
        full = {"seq": len(existing) + 1, "time": now(), **entry}
        full["prev"] = existing[-1]["hash"] if existing else GENESIS
        full["hash"] = entry_hash(full)
        full["sig"] = signing.sign(self.state, full["hash"].encode(), NAMESPACE)
        line = json.dumps(full, sort_keys=True, ensure_ascii=False) + "\n"
        with open(self.path, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._write_head(full["seq"], full["hash"])
        return full

    def _complete_interrupted_append(self, existing: list[dict[str, Any]]) -> None:
        """An append stopped between its line and its head leaves one signed entry past the head: adopt it."""
        if not existing or not self.head_path.exists():
            return
        head = json.loads(self.head_path.read_text())
        last = existing[-1]
        if head.get("count") == len(existing) - 1 and last.get("hash") == entry_hash(last):
            public = signing.public_key(self.state)
            if not signing.verify(
                public, signing.identity(self.state), last["hash"].encode(), last.get("sig", ""), NAMESPACE
            ):
                self._write_head(len(existing), last["hash"])

    def _write_head(self, count: int, last_hash: str) -> None:
        body = json.dumps({"count": count, "hash": last_hash}, sort_keys=True).encode()
        head = {"count": count, "hash": last_hash, "sig": signing.sign(self.state, body, NAMESPACE)}
        write_atomic(self.head_path, json.dumps(head, indent=1) + "\n")
