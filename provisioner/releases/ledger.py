"""The release ledger: append-only JSON lines, each entry hash-chained to the one before and signed.

Every entry carries `seq` (1, 2, ...), `prev` (the previous entry's hash, 64 zeros for the first), `hash`
(SHA-256 of the entry's canonical JSON without `hash` and `sig`) and `sig` (an OpenSSH signature of that hash
by the site's evidence key, namespace `provision-ledger`). A signed head file beside the ledger records the last
sequence number and hash, so cutting entries off the end is detected too. The chain itself is
provisioner.workspace.hash_chain, shared with the verification history.
"""

from __future__ import annotations

from provisioner.workspace.hash_chain import GENESIS, ChainProblem, HashChain, canonical, entry_hash, now
from provisioner.workspace.site_state import SiteState

__all__ = [
    "GENESIS",
    "HEAD_FILE",
    "LEDGER_FILE",
    "NAMESPACE",
    "Ledger",
    "LedgerProblem",
    "canonical",
    "entry_hash",
    "now",
]

NAMESPACE = "provision-ledger"
LEDGER_FILE = "releases.jsonl"
HEAD_FILE = "releases.head.json"
LOCK_FILE = ".ledger.lock"

LedgerProblem = ChainProblem


class Ledger(HashChain):
    what = "ledger"

    def __init__(self, state: SiteState):
        super().__init__(state, NAMESPACE, LEDGER_FILE, HEAD_FILE, LOCK_FILE)
