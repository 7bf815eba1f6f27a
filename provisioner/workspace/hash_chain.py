"""An append-only, hash-chained, signed JSON-lines file with a signed head: the release ledger and the verification
history are both one.

Every entry carries `seq` (1, 2, ...), `prev` (the previous entry's hash, 64 zeros for the first), `hash`
(SHA-256 of the entry's canonical JSON without `hash` and `sig`) and `sig` (an OpenSSH signature, in the chain's own
namespace, of the hash's 64 hex characters by the site's evidence key, see provisioner.workspace.signing). A signed
head file beside it records the number of entries and the last hash, so cutting entries off the end is detected as
well as deleting, reordering or editing one. `problems()` names the line and what is wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.workspace import signing
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState

GENESIS = "0" * 64
# what a problem is, for callers that sort them: an entry deleted (a gap in the sequence), entries reordered, an
# entry edited (its content no longer matches its hash), a signature that does not verify, entries cut off the
# end (the head records more), a line that is no entry, the link to the entry before broken, the head itself
KINDS = ("deleted", "reordered", "edited", "signature", "cut off", "unreadable", "chain", "head")


def canonical(entry: dict[str, Any]) -> bytes:
    body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def head_body(count: object, last_hash: object) -> bytes:
    """The bytes the head's signature covers."""
    return json.dumps({"count": count, "hash": last_hash}, sort_keys=True).encode()


def _bytes_of(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


@dataclass(frozen=True)
class ChainProblem:
    line: int  # 0: the file as a whole (its head)
    message: str
    kind: str = "chain"  # one of KINDS

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "message": self.message, "text": str(self)}


def _span(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"entry {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"entries {numbers[0]} to {numbers[-1]}"
    return "entries " + ", ".join(str(n) for n in numbers)


def sequence_problem(seq: object, last_seq: int, line_of: dict[int, list[int]], number: int) -> ChainProblem | None:
    """What a line's sequence number says when it is not the one after `last_seq`: entries missing before it and
    found nowhere (deleted), found elsewhere in the file (reordered), or a number that goes back (reordered or
    copied). `line_of`: sequence number -> the lines holding it."""
    if seq == last_seq + 1:
        return None
    if not isinstance(seq, int) or isinstance(seq, bool):
        return ChainProblem(number, f"sequence number {seq!r} is not a number: the entry was edited", "edited")
    if seq <= last_seq:
        elsewhere = [n for n in line_of.get(seq, []) if n != number]
        if elsewhere:
            return ChainProblem(number, f"entry {seq} appears again (also line {elsewhere[0]}): copied", "reordered")
        return ChainProblem(number, f"entry {seq} comes after entry {last_seq}: reordered", "reordered")
    missing = list(range(last_seq + 1, seq))
    gone = [m for m in missing if m not in line_of]
    if gone:
        return ChainProblem(
            number, f"{_span(gone)} missing before entry {seq} (after entry {last_seq}): deleted", "deleted"
        )
    later = [line_of[m][0] for m in missing]
    return ChainProblem(
        number,
        f"entry {seq} follows entry {last_seq}; {_span(missing)} stand{'s' if len(missing) == 1 else ''} "
        f"elsewhere (line {', '.join(str(n) for n in later)}): reordered",
        "reordered",
    )


class HashChain:
    """One chain: `namespace` its signatures' OpenSSH namespace; the entries in `evidence_dir/file_name`, the head
    in `evidence_dir/head_name`, writers serialised by a lock on `evidence_dir/lock_name`."""

    what = "chain"  # how messages name the file

    def __init__(self, state: SiteState, namespace: str, file_name: str, head_name: str, lock_name: str):
        self.state = state
        self.namespace = namespace
        self.file_name, self.head_name, self.lock_name = file_name, head_name, lock_name

    @property
    def path(self) -> Path:
        return self.state.evidence_dir / self.file_name

    @property
    def head_path(self) -> Path:
        return self.state.evidence_dir / self.head_name

    # ---- reading -------------------------------------------------------------------------------
    def fingerprint(self) -> tuple[bytes, bytes]:
        """The file's and its head's bytes as they are now: what a verification was made of."""
        return _bytes_of(self.path), _bytes_of(self.head_path)

    def entries(self) -> list[dict[str, Any]]:
        """The entries as written; callers that act on them verify first (see `problems`)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def numbered_entries(self) -> list[tuple[int, dict[str, Any]]]:
        """(line number, entry) for every line that is a JSON object; other lines are left out (`problems` names
        them)."""
        found = []
        for number, line in enumerate(self._lines(), start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append((number, entry))
        return found

    def _lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def problems(self) -> list[ChainProblem]:
        """Every way the file differs from what was appended: deletions, reordering, edits, bad signatures, a cut
        end; each naming the line (0: the file as a whole)."""
        found: list[ChainProblem] = []
        public = signing.existing_public_key(self.state)
        signer = signing.identity(self.state)
        lines = self._lines()
        line_of: dict[int, list[int]] = {}
        hash_of: dict[int, str] = {0: GENESIS}
        for number, numbered in self.numbered_entries():
            seq = numbered.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                line_of.setdefault(seq, []).append(number)
                hash_of.setdefault(seq, str(numbered.get("hash", "")))
        bad_signature = self._signature_failures(public, signer, lines)
        previous, highest = GENESIS, 0  # the last line's hash; the highest sequence number so far
        for number, line in enumerate(lines, start=1):
            try:
                entry: Any = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                found.append(ChainProblem(number, "not a JSON object: the line was edited", "unreadable"))
                continue
            seq = entry.get("seq")
            order = sequence_problem(seq, highest, line_of, number)
            if order is not None:
                found.append(order)
            elif entry.get("prev") != hash_of.get(highest):  # its sequence number is highest + 1
                found.append(
                    ChainProblem(number, "does not chain to the entry before it: that entry was replaced or edited")
                )
            if entry.get("hash") != entry_hash(entry):
                found.append(ChainProblem(number, "content does not match its hash: the entry was edited", "edited"))
            if public is None:
                found.append(ChainProblem(number, "no signing key to check the signature with", "signature"))
            elif bad_signature[number]:
                found.append(ChainProblem(number, "signature does not verify", "signature"))
            previous = str(entry.get("hash", ""))
            highest = max(highest, seq) if isinstance(seq, int) and not isinstance(seq, bool) else highest + 1
        found.extend(self._head_problems(len(lines), previous, public, signer))
        return found

    def _signature_failures(self, public: str | None, signer: str, lines: list[str]) -> dict[int, bool]:
        """Line number -> whether its entry's signature fails, checked by ssh-keygen several at a time (one
        process per signature: a long history would take minutes one by one)."""
        jobs: dict[int, tuple[bytes, str]] = {}
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                jobs[number] = (str(entry.get("hash", "")).encode(), str(entry.get("sig", "")))
        if public is None or not jobs:
            return dict.fromkeys(jobs, True)
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            failed = pool.map(lambda job: signing.verify(public, signer, job[0], job[1], self.namespace) is not None,
                              jobs.values())  # fmt: skip
            return dict(zip(jobs, failed, strict=True))

    def _head_problems(self, count: int, last_hash: str, public: str | None, signer: str) -> list[ChainProblem]:
        if not self.head_path.exists():
            return [ChainProblem(0, "the head record is missing", "head")] if count else []
        try:
            head = json.loads(self.head_path.read_text())
        except ValueError:
            return [ChainProblem(0, "the head record is not JSON", "head")]
        if not isinstance(head, dict):
            return [ChainProblem(0, "the head record is not a JSON object", "head")]
        problems = []
        body = head_body(head.get("count"), head.get("hash"))
        if public is None or signing.verify(public, signer, body, str(head.get("sig", "")), self.namespace):
            problems.append(ChainProblem(0, "the head record's signature does not verify", "head"))
        recorded = head.get("count")
        if recorded == count - 1 and count:
            # an append stopped between its line and its head: the extra entry is chained and signed (checked
            # above), so only the holder of the signing key wrote it; the next append moves the head on
            return problems
        if recorded == count and head.get("hash") == (last_hash if count else GENESIS):
            return problems
        if isinstance(recorded, int) and recorded > count:
            problems.append(
                ChainProblem(0, f"cut off: the head records {recorded} entries but the {self.what} holds {count}: "
                             f"entries were deleted (after line {count} if none is missing above)", "cut off")
            )  # fmt: skip
        elif recorded == count:
            problems.append(
                ChainProblem(0, f"the last entry (line {count}) is not the one the head records: replaced", "head")
            )
        else:
            problems.append(
                ChainProblem(0, f"the head records {recorded} entries but the {self.what} holds {count}: entries were "
                             "added outside the tool", "head")
            )  # fmt: skip
        return problems

    # ---- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time: rules are checked and the entry appended under the same lock. The lock file is
        opened for appending and never written, so taking the lock changes no file once it exists."""
        self.state.evidence_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state.evidence_dir / self.lock_name, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one entry (call inside `locked()`); returns it with seq, time (unless given), prev, hash, sig."""
        existing = self.entries()
        self._complete_interrupted_append(existing)
        full = {"seq": len(existing) + 1, "time": now(), **entry}
        full["prev"] = existing[-1]["hash"] if existing else GENESIS
        full["hash"] = entry_hash(full)
        full["sig"] = signing.sign(self.state, full["hash"].encode(), self.namespace)
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
                public, signing.identity(self.state), last["hash"].encode(), last.get("sig", ""), self.namespace
            ):
                self._write_head(len(existing), last["hash"])

    def _write_head(self, count: int, last_hash: str) -> None:
        head = {
            "count": count,
            "hash": last_hash,
            "sig": signing.sign(self.state, head_body(count, last_hash), self.namespace),
        }
        write_atomic(self.head_path, json.dumps(head, indent=1) + "\n")
