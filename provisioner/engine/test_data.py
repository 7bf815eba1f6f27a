"""What the CLI asks of the test-data controls (DATA-1..3): seed, refresh, scrub, scan."""

from __future__ import annotations

from provisioner.personal_data.service import refresh, scan, scrub, seed

__all__ = ["refresh", "scan", "scrub", "seed"]
