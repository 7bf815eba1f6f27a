"""Precision and recall of each personal-data detector on the labelled sample set tests/data/pii_samples.csv.

.venv/bin/python bench/pii_quality.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provisioner.personal_data.quality import load_samples, measure  # noqa: E402

SAMPLES = ROOT / "tests" / "data" / "pii_samples.csv"


def main() -> None:
    samples = load_samples(SAMPLES)
    print(f"{len(samples)} labelled values from {SAMPLES.relative_to(ROOT)}")
    print(f"{'detector':<14} {'precision':>9} {'recall':>7} {'TP':>5} {'FP':>4} {'FN':>4}")
    for q in measure(samples).values():
        print(
            f"{q.detector:<14} {q.precision:>9.3f} {q.recall:>7.3f} "
            f"{q.true_positives:>5} {q.false_positives:>4} {q.false_negatives:>4}"
        )


if __name__ == "__main__":
    main()
