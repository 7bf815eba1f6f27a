"""The verification history in a period pack (issue 21), so that an auditor checks it from the pack, with stock
tools, and not only on the controller with `provision history`.

- `history/verify-chain.jsonl` and `history/verify-chain.head.json`: the chain and its signed head as the
  controller held them when the pack was made, byte for byte;
- `history/entries/NNNNNN.json`: the entry on line NNNNNN, as the exact bytes its hash covers (the entry without
  `hash` and `sig`, keys sorted, no spaces), and `NNNNNN.sig` its signature;
- `history/entries.sha256`: each line's recorded hash, in sha256sum's format, so `sha256sum -c` checks every entry
  against its hash; `ssh-keygen -Y verify` each signature over its hash; `grep` each entry's `prev`;
- `history/head.txt` and `history/head.sig`: the bytes the head's signature covers, and that signature.

Whatever is wrong with the chain stays wrong in these files (an edited entry no longer matches its hash, a deleted
or reordered one breaks the `prev` links): the checks of VERIFY.md fail naming the line, as `provision history`
does.
"""

from __future__ import annotations

import json
import re

from provisioner.conformance.history import HEAD_FILE, HISTORY_FILE, NAMESPACE, VerifyHistory
from provisioner.workspace.hash_chain import GENESIS, canonical, head_body
from provisioner.workspace.site_state import SiteState

FOLDER = "history"
ENTRIES = f"{FOLDER}/entries"
SUMS = f"{FOLDER}/entries.sha256"
HEAD_TEXT, HEAD_SIG = f"{FOLDER}/head.txt", f"{FOLDER}/head.sig"
_HASH = re.compile(r"[0-9a-f]{64}")


def files(state: SiteState) -> dict[str, bytes]:
    """The pack's history files (path in the pack -> bytes); empty when the site has no history."""
    chain = VerifyHistory(state)
    raw, head_raw = chain.fingerprint()
    if not raw:
        return {}
    found = {f"{FOLDER}/{HISTORY_FILE}": raw}
    sums = []
    for number, entry in chain.numbered_entries():
        name = f"{ENTRIES}/{number:06d}"
        found[f"{name}.json"] = canonical(entry)
        found[f"{name}.sig"] = (str(entry.get("sig", "")).strip() + "\n").encode()
        recorded = str(entry.get("hash", ""))
        # a recorded hash that is no SHA-256 (an edited line) is written as zeros: sha256sum -c then fails there
        sums.append(f"{recorded if _HASH.fullmatch(recorded) else GENESIS}  {name}.json\n")
    found[SUMS] = "".join(sums).encode()
    if head_raw:
        found[f"{FOLDER}/{HEAD_FILE}"] = head_raw
        try:
            head = json.loads(head_raw)
        except ValueError:
            head = None
        if isinstance(head, dict):
            found[HEAD_TEXT] = head_body(head.get("count"), head.get("hash"))
            found[HEAD_SIG] = (str(head.get("sig", "")).strip() + "\n").encode()
    return found


def verify_steps(identity: str, allowed_signers: str, step: int) -> list[str]:
    """VERIFY.md's step on the history: every command on its own line in a ```sh block, run from the pack's folder,
    exit status 0 when the history holds."""
    verify = f"ssh-keygen -Y verify -f {allowed_signers} -I {identity} -n {NAMESPACE}"
    return [
        f"## {step}. The verification history behind the period",
        "",
        f"`{FOLDER}/{HISTORY_FILE}` is the hash-chained, signed history of verify runs the period section is drawn "
        f"from, as the controller held it when this pack was made (with its signed head `{FOLDER}/{HEAD_FILE}`). "
        f"`{ENTRIES}/` holds the entry of each of its lines (`NNNNNN.json`, NNNNNN the line: the exact bytes its "
        f"hash covers) with its signature (`NNNNNN.sig`); `{SUMS}` lists the hash each line records. The first "
        "command checks every entry against its hash, the second every signature (made by the evidence key over "
        "the hash), the third that each entry names the one before it (a deleted or reordered entry breaks the "
        f"chain), the last two that the signed head records this many entries and the last one (entries cut off "
        "the end). A command that fails names the line.",
        "",
        "```sh",
        f"sha256sum -c {SUMS}",
        f'bad=0; while read -r hash name; do printf %s "$hash" | {verify} -s "${{name%.json}}.sig" >/dev/null '
        f'|| {{ echo "$name: signature does not verify"; bad=1; }}; done < {SUMS}; test $bad = 0',
        f'prev={GENESIS}; bad=0; while read -r hash name; do grep -q "\\"prev\\":\\"$prev\\"" "$name" || '
        f'{{ echo "$name: does not follow the line before it (an entry deleted, reordered or replaced)"; bad=1; }}; '
        f"prev=$hash; done < {SUMS}; test $bad = 0",
        f"{verify} -s {HEAD_SIG} < {HEAD_TEXT}",
        f'grep -qx "{{\\"count\\": $(wc -l < {SUMS}), \\"hash\\": \\"$(tail -n 1 {SUMS} | cut -d " " -f 1)\\"}}" '
        f"{HEAD_TEXT}",
        "```",
        "",
    ]
