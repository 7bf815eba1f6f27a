"""Precision and recall of the personal-data detectors on a labelled sample set (value, label per row)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from provisioner.personal_data.detectors import DETECTORS


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


def load_samples(path: Path) -> list[tuple[str, str]]:
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
