"""`provision verify`: run the conformance suite against a site, summarise per control."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.ansible_run.runner import new_run_dir
from provisioner.conformance import attempts, scope
from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.history import record_run, verdicts
from provisioner.conformance.signed_results import RESULTS_FILE, SignedRun, write_signed
from provisioner.conformance.waivers import accepted_risk, apply_waivers, control_status, summarise
from provisioner.errors import InputError, ProvisionError, shown
from provisioner.releases.decisions import signed_waivers
from provisioner.releases.ledger import Ledger
from provisioner.site.load import LoadedSite
from provisioner.workspace.redact import Redactor
from provisioner.workspace.site_state import SiteState

CHECKS_DIR = Path(__file__).resolve().parent / "checks"
# Parallel workers of the suite: measured on the example lab (2 cores), 5 ran the suite in 6.4-6.6 s against
# 6.5-6.8 s with 4 or 6 (before the cheaper login attempts: 7.6 s against 8.2 and 8.0): its five checks that wait
# longest (one reachability check per segment and access network) then start together, one per worker (see
# plugin.interleaved).
DEFAULT_WORKERS = 5
SELECT_HELP = "give parts of check names joined by and, or, not and parentheses, such as 'access and not database'"
TRIGGER_RE = re.compile(r"^(manual|watch:[a-z][a-z0-9-]{0,30})$")


@dataclass
class VerifyResult:
    run_dir: Path
    results: list[dict[str, Any]]
    pytest_rc: int
    signed: SignedRun | None = None  # results.json as signed with the site's evidence key
    covered: list[str] | None = None  # the control IDs the run was asked to verify; None: every control
    trigger: str = "manual"  # what started the run: manual, or watch:<schedule name>

    @property
    def unattempted(self) -> list[dict[str, Any]]:
        """Attempts not made and not declared out of scope (scope.py): verify fails for them."""
        return scope.unattempted(self.results)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] == "fail"]

    @property
    def ok(self) -> bool:
        """No failure once waivers are applied (pytest exits 1 for failures a waiver covers; 2+ is an error)."""
        return self.pytest_rc in (0, 1) and not self.failed and not self.unattempted and bool(self.results)

    @property
    def waived(self) -> list[dict[str, Any]]:
        """Failures a waiver accepts: not failures of the run, and not passes either."""
        return [r for r in self.results if r["status"] == "waived"]

    def by_control(self) -> dict[str, dict[str, int]]:
        """pass/fail/skip per control, in catalogue order; 'waived' appears where a waiver covers a failure."""
        counts = summarise(self.results)
        ordered = {cid: counts.pop(cid) for cid in CONTROLS if cid in counts}
        return {**ordered, **counts}

    def covered_verdicts(self) -> dict[str, str]:
        """The verdict of every control the run covered, 'skip' for one without results; controls the run did not
        cover are absent (a partial run proves nothing about them)."""
        return verdicts(self.results, self.covered)

    def verdicts(self) -> dict[str, str]:
        """fail | waived | pass | skip per control, in catalogue order: a control with a waived failure is
        'waived' (an accepted risk), never 'pass'."""
        return {cid: control_status(counts) for cid, counts in self.by_control().items()}

    @staticmethod
    def accepted_risk(row: dict[str, Any]) -> str:
        """'accepted risk (waiver W, approved by A, expires D)' for a waived result."""
        return accepted_risk([row])


def check_arguments(keys: str | None, select: str | None) -> Path | None:
    """--keys must be a folder and -k a pytest expression, found before a run folder is made; the keys folder."""
    _check_selection(select)
    if keys is None:
        return None
    keys_dir = Path(keys)
    if not keys.strip() or not keys_dir.is_dir():
        what = "empty" if not keys.strip() else "not a folder" if keys_dir.exists() else "no such folder"
        raise InputError(
            f"--keys {shown(keys)}: {what}; name the folder of people's private keys "
            "(one file per person, named as in people:)"
        )
    return keys_dir


def check_controls(names: list[str], option: str = "--controls") -> list[str]:
    """Control IDs (NET-2) or families (NET) of the catalogue -> the control IDs they name, in catalogue order;
    an unknown name is bad input."""
    ids = list(CONTROLS)
    families = sorted({cid.split("-", 1)[0] for cid in ids})
    wanted = [name.strip() for name in names if name.strip()]
    if not wanted:
        raise InputError(f"{option}: empty; name control IDs such as {ids[0]} or families such as {families[0]}")
    for name in wanted:
        if name not in ids and name not in families:
            raise InputError(
                f"{option} {shown(name)}: no control or family of the catalogue; allowed: {', '.join(families)} "
                f"or an ID such as {ids[0]}"
            )
    return [cid for cid in ids if cid in wanted or cid.split("-", 1)[0] in wanted]


def _check_selection(select: str | None) -> None:
    if select is None:
        return
    if not select.strip():
        raise InputError(f"-k {shown(select)}: empty; {SELECT_HELP}")
    problem = _expression_problem(select)
    if problem:
        raise InputError(f"-k {shown(select)}: {problem}; {SELECT_HELP}")


def _expression_problem(select: str) -> str | None:
    """Why pytest would refuse `select` as a -k expression, asked of pytest's own parser; None when it is fine."""
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pytest moved its parser: the suite itself still refuses a bad expression
        return None
    try:
        Expression.compile(select)
    except Exception as exc:  # SyntaxError (pytest 9) or ParseError (pytest 8)
        return f"not a -k expression ({getattr(exc, 'msg', None) or exc})"
    return None


def suite_environment() -> dict[str, str]:
    """The suite's environment: pytest loads only the plugins named on its command line, never whatever else is
    installed beside it. A plugin that happens to be in the environment must not touch what verify reports, and
    each of the suite's worker processes would otherwise import (and assertion-rewrite) every one of them."""
    return {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def suite_command(
    site: LoadedSite,
    run_dir: Path,
    workers: int = DEFAULT_WORKERS,
    keys_dir: Path | None = None,
    select: str | None = None,
    controls: list[str] | None = None,
    basetemp: Path | None = None,
) -> list[str]:
    """The conformance suite's command line, run with `suite_environment()`: pytest with exactly the plugins named
    here (the suite's own, and xdist for parallel workers).

    `basetemp` is a folder for pytest's own temporary files that nothing else uses. xdist asks pytest for one to
    give its workers; given none, pytest numbers a new folder under the user's shared pytest-of-<user> and deletes
    the older ones there, other pytest runs' folders too. With another run's 746 MB folder there, the suite took 5 s
    longer to delete it, and a run must not delete what it did not make."""
    cmd = [
        sys.executable, "-m", "pytest", str(CHECKS_DIR),
        "-p", "provisioner.conformance.plugin", "-p", "no:cacheprovider",
        "-c", str(CHECKS_DIR / "pytest.ini"), "--rootdir", str(CHECKS_DIR), "--import-mode=importlib",
        "-q", "--no-header", "-rN", "--tb=line",
        f"--provision-site={site.path}", f"--provision-results={run_dir}",
        f"--junitxml={run_dir / 'junit.xml'}", "-o", "junit_family=xunit2",
    ]  # fmt: skip
    if workers > 1:
        cmd += ["-p", "xdist.plugin", "-n", str(workers), "--maxschedchunk", "1"]  # see plugin.interleaved
    if basetemp is not None:
        cmd.append(f"--basetemp={basetemp}")
    if keys_dir is not None:
        cmd.append(f"--provision-keys={keys_dir}")
    if select:
        cmd += ["-k", select]
    if controls is not None:
        cmd.append(f"--provision-controls={','.join(controls)}")
    return cmd


def run_verify(
    site: LoadedSite,
    workers: int = DEFAULT_WORKERS,
    keys_dir: Path | None = None,
    select: str | None = None,
    *,
    controls: list[str] | None = None,
    trigger: str = "manual",
) -> VerifyResult:
    """Run the suite; `controls` (IDs) limits it to those controls' checks (their verdicts are the only ones the
    run gives), `trigger` says what started it (manual, watch:<schedule>): both are recorded in the history."""
    if controls is not None:
        unknown = [cid for cid in controls if cid not in CONTROLS]
        if unknown or not controls:
            raise InputError(f"controls {', '.join(unknown) or '(none)'}: not control IDs of the catalogue")
    if not TRIGGER_RE.match(trigger):
        raise InputError(f"trigger {shown(trigger)}: allowed: manual or watch:<schedule name>")
    state = SiteState(site.name)
    if not state.known_hosts.exists():
        raise ProvisionError(f"site '{site.name}' has not been applied here yet: run `provision apply` first")
    run_dir = new_run_dir(state, "verify")
    with tempfile.TemporaryDirectory(prefix="provisioner-verify-") as scratch:
        cmd = suite_command(site, run_dir, workers, keys_dir, select, controls, basetemp=Path(scratch) / "pytest")
        start = attempts.before_run(site, state)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=suite_environment())
    between = attempts.after_run(site, state, run_dir, start)  # before the Redactor: attempts.json is scrubbed
    redactor = Redactor(state.secret_values())
    (run_dir / "pytest.log").write_text(redactor.text(proc.stdout + proc.stderr))
    results_file = run_dir / RESULTS_FILE
    if not results_file.exists():
        raise ProvisionError(f"the conformance suite did not run: see {run_dir / 'pytest.log'}")
    redactor.tree(run_dir)
    payload = json.loads(results_file.read_text())
    # waivers (ACC-7) are applied where results are summarised; the suite's own status stays as raw_status
    signed = signed_waivers(Ledger(state).entries(), site.model)
    results = scope.mark(apply_waivers(payload["results"], site.model, None, signed), site.model)
    payload["results"] = results
    payload["waivers"] = [w.model_dump(mode="json") for w in site.model.waivers]
    # signed where it is written: `provision report` refuses results that are unsigned or changed since
    signed_run = write_signed(state, run_dir, payload)
    # a -k run covers the controls it has results for; a --controls run the controls it was asked for
    covered = list(controls) if controls is not None else None
    if covered is None and select:
        covered = [cid for cid in CONTROLS if any(r["control"] == cid for r in results)]
    record_run(
        state,
        run_dir,
        results,
        signed_run.digest,
        signed_run.fingerprint,
        trigger=trigger,
        covered=covered,
        attempts=between,
    )
    return VerifyResult(run_dir, results, proc.returncode, signed_run, covered, trigger)
