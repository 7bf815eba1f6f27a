"""What the CLI asks of the conformance suite and the evidence pack: verify a site, write and check a pack, and
the Secure Development Policy as a document of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.history import VerifyHistory
from provisioner.conformance.people_keys import check_people_keys
from provisioner.conformance.verify import DEFAULT_WORKERS as DEFAULT_WORKERS
from provisioner.conformance.verify import VerifyResult, check_arguments, check_controls, run_verify
from provisioner.errors import InputError, ProvisionError, shown
from provisioner.releases.service import ReleaseBook
from provisioner.report import policy as policy_doc
from provisioner.report.collect import collect, period_section, with_period
from provisioner.report.manifest import MANIFEST, PUBLIC_KEY, verify_pack
from provisioner.report.pack import check_out_folder, default_folder, write_pack
from provisioner.report.period import Period, parse_period
from provisioner.report.render_pdf import render_pdf
from provisioner.site.load import LoadedSite
from provisioner.workspace import signing
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState


@dataclass
class Verification:
    result: VerifyResult
    releases_verified: list[dict[str, str]]
    ledger_problem: str | None  # why the run could not be recorded in the release ledger


@dataclass
class Pack:
    folder: Path
    data: dict[str, Any]

    @property
    def evidence_key(self) -> dict[str, str]:
        """identity, public key and SHA256 fingerprint of the key that signed the pack."""
        key: dict[str, str] = self.data["evidence_key"]
        return key


def control_title(control_id: str) -> str:
    return CONTROLS[control_id].title if control_id in CONTROLS else ""


def controls_named(option: str | None) -> list[str] | None:
    """--controls NET,ACC-2 (families or IDs of the catalogue) -> the control IDs, in catalogue order; None (every
    control) when the option is not given or names the whole catalogue."""
    if option is None:
        return None
    ids = check_controls(option.split(","))
    return None if set(ids) == set(CONTROLS) else ids


def verify(
    site: LoadedSite,
    workers: int,
    keys: str | None,
    select: str | None,
    controls: list[str] | None = None,
    trigger: str = "manual",
) -> Verification:
    """Run the conformance suite (--keys: the people's private keys folder; -k: which checks; controls: the
    control IDs to verify, None for all); a full run is recorded in the release ledger for each environment
    running a release (CHG-1). A partial run (-k or controls) is not: it proves only part of the catalogue."""
    keys_dir = check_arguments(keys, select)
    if keys is not None and keys_dir is not None:
        check_people_keys(keys, keys_dir, [person.name for person in site.model.people])
    if controls is not None and set(controls) >= set(CONTROLS):
        controls = None
    result = run_verify(site, workers=workers, keys_dir=keys_dir, select=select, controls=controls, trigger=trigger)
    if select is not None or controls is not None:
        return Verification(result, [], None)
    try:
        entries = ReleaseBook.open(site).record_verify(result.run_dir, result.ok)
    except ProvisionError as exc:
        return Verification(result, [], str(exc))
    recorded = [{"env": e["env"], "release": e["release"], "result": e["result"]} for e in entries]
    return Verification(result, recorded, None)


def check_period(start: str | None, end: str | None) -> Period | None:
    """--from and --to: both or neither; dates, --from before --to (exit 2 otherwise, before anything is read)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        given, missing = ("--from", "--to") if end is None else ("--to", "--from")
        raise InputError(f"{given} needs {missing} too: a period report covers --from DATE --to DATE")
    return parse_period(start, end)


def write_report(site: LoadedSite, out_dir: str | None, period: Period | None = None) -> Pack:
    """The pack, into --out (a new or empty folder) or the site's evidence folder; --out is checked before the
    lab is read. With `period`, the pack also shows the verification history over it."""
    folder = check_out_folder(out_dir) if out_dir is not None else None
    state = SiteState(site.name)
    data = collect(site, state)
    if period is not None:
        data = with_period(data, period_section(site.model, state, period))
    return Pack(write_pack(data, folder or default_folder(state), state), data)


@dataclass
class HistoryCheck:
    """What `provision history` found: the chain's file, its entries, and its problems (none: it holds)."""

    path: Path
    entries: int
    problems: list[dict[str, Any]]


def check_history(site: LoadedSite) -> HistoryCheck:
    """The site's verification history against its chain, signatures and signed head."""
    chain = VerifyHistory(SiteState(site.name))
    return HistoryCheck(chain.path, len(chain.numbered_entries()), [p.as_dict() for p in chain.problems()])


@dataclass
class PackCheck:
    """What `provision report verify` found: the problems (none: intact), whether the key was pinned with --key,
    and the fingerprint of the key the pack carries (None when it cannot be read)."""

    problems: list[str]
    pinned: bool
    carried_fingerprint: str | None


def check_pack(pack: str, key: str | None) -> PackCheck:
    """Every file of a pack (DIR) against its signed manifest, by --key's public key if given. Without --key the
    pack is checked only against the key it carries: that proves it is intact, not who made it."""
    folder = Path(pack)
    if not pack.strip() or not folder.is_dir():
        what = "empty" if not pack.strip() else "not a folder" if folder.exists() else "no such folder"
        raise InputError(f"{shown(pack)}: {what}; name the folder of an evidence pack (it holds {MANIFEST})")
    problems = verify_pack(folder, _trusted_key(key) if key is not None else None)
    return PackCheck(problems, key is not None, _carried_fingerprint(folder))


def _carried_fingerprint(folder: Path) -> str | None:
    try:
        return signing.fingerprint((folder / PUBLIC_KEY).read_text())
    except (OSError, UnicodeDecodeError, ProvisionError, IndexError):
        return None


def _trusted_key(key: str) -> str:
    """The public key a pack must be signed with, read from --key FILE."""
    wanted = "an SSH public key such as the pack's evidence-signing-key.pub ('ssh-ed25519 AAAA... comment')"
    key_file = Path(key)
    if not key.strip():
        raise InputError(f"--key '': empty; {wanted}")
    if key_file.is_dir() or not key_file.exists():
        raise InputError(f"--key {key_file}: {'a folder' if key_file.is_dir() else 'no such file'}; {wanted}")
    try:
        text = key_file.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--key {key_file}: cannot be read ({exc}); {wanted}") from None
    fields = text.split()
    if len(fields) < 2 or not fields[1].startswith("AAAA") or "\n" in text:
        raise InputError(f"--key {key_file}: not {wanted}")
    return text


POLICY_FORMATS = ("md", "pdf")


def check_policy_out(out: str | None, fmt: str, to_terminal: bool) -> Path | None:
    """--out FILE for `provision policy`: a file in an existing folder (an existing file is replaced); checked
    before anything is written. Without --out, a PDF is not written to a terminal."""
    if fmt not in POLICY_FORMATS:
        raise InputError(f"--format {shown(fmt)}: unknown; allowed: {', '.join(POLICY_FORMATS)}")
    wanted = "name the file to write the policy to, in an existing folder"
    if out is None:
        if fmt == "pdf" and to_terminal:
            raise InputError("--format pdf: a PDF is not printed to a terminal; add --out FILE or redirect the output")
        return None
    if not out.strip():
        raise InputError(f"--out '': empty; {wanted}")
    target = Path(out)
    if target.is_dir():
        raise InputError(f"--out {shown(out)}: a folder; {wanted}")
    if not target.parent.is_dir():
        raise InputError(f"--out {shown(out)}: no such folder {shown(str(target.parent))}; {wanted}")
    return target


def policy_document(site: LoadedSite, fmt: str) -> bytes:
    """The Secure Development Policy of a site, as Markdown (UTF-8) or PDF, from its site file alone."""
    blocks = policy_doc.build(site.model, policy_doc.source_of(site.path))
    if fmt == "pdf":
        return render_pdf(policy_doc.to_html(blocks))
    return policy_doc.to_markdown(blocks).encode()


def write_policy(site: LoadedSite, fmt: str, out: Path) -> Path:
    write_atomic(out, policy_document(site, fmt))
    return out
