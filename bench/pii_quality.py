"""Precision and recall of each personal-data detector on the labelled sample set tests/data/pii_samples.csv.

.venv/bin/python bench/pii_quality.py
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provisioner.testdata.detectors import DETECTORS  # noqa: E402

SAMPLES = ROOT / "tests" / "data" / "pii_samples.csv"


@dataclass
class Quality:
    detector: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


def load_samples(path: Path = SAMPLES) -> list[tuple[str, str]]:
    with path.open(newline="") as handle:
        return [(row["value"], row["label"]) for row in csv.DictReader(handle)]


def measure(samples: list[tuple[str, str]]) -> dict[str, Quality]:
    result = {}
    for detector in DETECTORS:
        fired = [(detector.find(value), label == detector.name) for value, label in samples]
        result[detector.name] = Quality(
            detector.name,
            sum(1 for hit, wanted in fired if hit and wanted),
            sum(1 for hit, wanted in fired if hit and not wanted),
            sum(1 for hit, wanted in fired if wanted and not hit),
        )
    return result


def main() -> None:
    samples = load_samples()
    print(f"{len(samples)} labelled values from {SAMPLES.relative_to(ROOT)}")
    print(f"{'detector':<14} {'precision':>9} {'recall':>7} {'TP':>5} {'FP':>4} {'FN':>4}")
    for q in measure(samples).values():
        print(
            f"{q.detector:<14} {q.precision:>9.3f} {q.recall:>7.3f} "
            f"{q.true_positives:>5} {q.false_positives:>4} {q.false_negatives:>4}"
        )


if __name__ == "__main__":
    main()
