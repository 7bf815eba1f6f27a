"""Fuzzing the site-file loader at length (issue 16): the properties of tests/unit/site/test_site_fuzz.py on many more
mutants of the example site, with a fresh seed unless one is given. Prints figures, then each distinct failure once
with the smallest change of the example that shows it; asserts nothing.

    .venv/bin/python bench/site_fuzz.py [--examples 20000] [--seed N] [--save DIR]

A failure is a bug of the loader: a traceback instead of SiteError, more than 2 s, a problem without file or message,
or a template that reaches the inventory untagged. Target: no failures.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import yaml  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from site_mutations import DUMPER, EXAMPLE_DATA, EXAMPLE_TEXT, site_files  # noqa: E402
from site_properties import Sandbox, Verdict  # noqa: E402

# What a mutant is compared with to show its change: the example as written, and in each style the data layer dumps.
ORIGINALS = (
    EXAMPLE_TEXT,
    *(
        yaml.dump(EXAMPLE_DATA, Dumper=DUMPER, sort_keys=False, allow_unicode=unicode, default_flow_style=flow)
        for unicode in (False, True)
        for flow in (False, None, True)
    ),
)


def change(raw: bytes, lines: int = 8, width: int = 160) -> str:
    """The lines a mutant changed, against whichever original it is closer to."""
    text = raw.decode("utf-8", errors="backslashreplace")
    diffs = []
    for original in ORIGINALS:
        diff = difflib.unified_diff(original.splitlines(), text.splitlines(), lineterm="", n=0)
        diffs.append([line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")])
    shortest = min(diffs, key=lambda found: sum(map(len, found)))
    shown = [line if len(line) <= width else line[:width] + f"... ({len(line)} chars)" for line in shortest[:lines]]
    if len(shortest) > lines:
        shown.append(f"... {len(shortest) - lines} more changed lines")
    return "\n".join(shown) or "(no line changed: the bytes or the encoding did)"


@dataclass
class Failure:
    """One distinct failure: how often it came up, and its mutant with the smallest change."""

    verdict: Verdict
    raw: bytes
    count: int = 0
    size: int = sys.maxsize


@dataclass
class Tally:
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: dict[tuple[str, str, str], Failure] = field(default_factory=dict)

    def record(self, verdict: Verdict, raw: bytes) -> None:
        self.outcomes[verdict.outcome] += 1
        if verdict.ok:
            return
        failure = self.failures.setdefault(verdict.signature, Failure(verdict, raw))
        failure.count += 1
        size = len(change(raw))
        if size < failure.size:
            failure.verdict, failure.raw, failure.size = verdict, raw, size

    @property
    def examples(self) -> int:
        return sum(self.outcomes.values())


def fuzz(sandbox: Sandbox, examples: int, chosen_seed: int) -> Tally:
    tally = Tally()

    @seed(chosen_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: every failure is counted once, and the smallest change kept
        suppress_health_check=list(HealthCheck),
    )
    @given(site_files())
    def check(raw: bytes) -> None:
        tally.record(sandbox.check(raw), raw)

    check()
    return tally


def minimise(sandbox: Sandbox, failure: Failure, budget: float) -> None:
    """Drop lines of the failure's mutant while it still fails the same way (delta debugging on lines, within
    `budget` seconds): what is left is the part of the file the loader trips over."""
    lines = failure.raw.splitlines(keepends=True)
    deadline = time.monotonic() + budget
    size = len(lines) // 2
    while size >= 1 and time.monotonic() < deadline:
        start, dropped = 0, False
        while start < len(lines) and time.monotonic() < deadline:
            trial = lines[:start] + lines[start + size :]
            verdict = sandbox.check(b"".join(trial))
            if trial and verdict.signature == failure.verdict.signature:
                lines, dropped, failure.verdict = trial, True, verdict
            else:
                start += size
        if not dropped:
            size //= 2
    failure.raw = b"".join(lines)


def shown(raw: bytes, lines: int = 12, width: int = 160) -> str:
    """A small mutant in full, a large one as its change from the example."""
    text = raw.decode("utf-8", errors="backslashreplace").splitlines()
    if len(text) > lines:
        return change(raw)
    return "\n".join(line if len(line) <= width else line[:width] + f"... ({len(line)} chars)" for line in text)


def report(tally: Tally, seconds: float, restarts: int) -> None:
    failed = sum(count for outcome, count in tally.outcomes.items() if outcome not in ("accepted", "rejected"))
    kinds = ", ".join(f"{outcome} {count}" for outcome, count in tally.outcomes.most_common())
    print(f"{tally.examples} examples in {seconds:.1f} s = {tally.examples / seconds:.1f} examples/s ({kinds})")
    print(f"failures: {failed}, distinct: {len(tally.failures)}; workers replaced after a hang or death: {restarts}")
    for number, failure in enumerate(sorted(tally.failures.values(), key=lambda f: -f.count), 1):
        print(f"\n#{number} x{failure.count} {failure.verdict}")
        print("   " + shown(failure.raw).replace("\n", "\n   "))


def save(tally: Tally, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, failure in enumerate(sorted(tally.failures.values(), key=lambda f: -f.count), 1):
        stem = f"{number:02d}-{failure.verdict.outcome}"
        (directory / f"{stem}.yml").write_bytes(failure.raw)
        (directory / f"{stem}.txt").write_text(f"{failure.verdict}\n")
    print(f"\nthe smallest mutant of each failure is in {directory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None, help="repeat a run: the seed it printed")
    parser.add_argument("--save", type=Path, default=None, help="write the smallest mutant of each failure here")
    parser.add_argument("--minimise", type=float, default=20.0, help="seconds to shrink each failure's mutant (0: off)")
    args = parser.parse_args()
    chosen_seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"site-file fuzzer: up to {args.examples} mutants of the example, seed {chosen_seed}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="provisioner-bench-fuzz-") as work, Sandbox(Path(work)) as sandbox:
        started = time.monotonic()
        tally = fuzz(sandbox, args.examples, chosen_seed)
        seconds, restarts = time.monotonic() - started, sandbox.restarts
        for failure in tally.failures.values() if args.minimise > 0 else ():
            minimise(sandbox, failure, args.minimise)
    report(tally, seconds, restarts)
    if args.save is not None:
        save(tally, args.save)


if __name__ == "__main__":
    main()
