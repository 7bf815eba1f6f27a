"""Benchmark of the LXC lab: cold apply (cached and, with --uncached-image, fresh base image),
no-op re-apply and destroy of the example company. Prints figures; asserts nothing.

    .venv/bin/python bench/lab_apply.py [--uncached-image] [--rounds N]

Targets on the 2-core machine: cold apply with a cached base image under 90 s; no-op re-apply under 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE = "bench"


def provision(*args: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, env={**os.environ, **env}
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"provision {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--uncached-image", action="store_true", help="also time a cold apply that builds the base")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from provisioner.backends.lxc import base_image

    data = yaml.safe_load((ROOT / "inventories/example/site.yml").read_text())
    data = json.loads(json.dumps(data).replace("10.90.", "10.92."))
    data["site"] = SITE
    work = Path(tempfile.mkdtemp(prefix="provisioner-bench-"))
    site_file = work / "inventories" / SITE / "site.yml"
    site_file.parent.mkdir(parents=True)
    site_file.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"PROVISION_STATE_DIR": str(work / "state")}
    figures: dict[str, list[float]] = {"cold apply (cached base image)": [], "no-op re-apply": [], "destroy": []}
    try:
        if args.uncached_image:
            directory = base_image.lxc_path() / base_image.base_name()
            shutil.rmtree(directory, ignore_errors=True)
            figures["cold apply (building the base image)"] = [provision("apply", str(site_file), env=env)]
            provision("destroy", str(site_file), "--confirm-prod", SITE, env=env)
        for _ in range(args.rounds):
            figures["cold apply (cached base image)"].append(provision("apply", str(site_file), env=env))
            figures["no-op re-apply"].append(provision("apply", str(site_file), env=env))
            figures["destroy"].append(provision("destroy", str(site_file), "--confirm-prod", SITE, env=env))
    finally:
        subprocess.run(
            [sys.executable, "-m", "provisioner", "destroy", str(site_file), "--confirm-prod", SITE],
            capture_output=True,
            env={**os.environ, **env},
        )
        shutil.rmtree(work, ignore_errors=True)
    hosts = len(data["hosts"]) + 1
    print(f"LXC lab, example company ({hosts} containers incl. gateway), {os.cpu_count()} cores")
    for name, values in figures.items():
        if values:
            print(
                f"  {name:40s} median {statistics.median(values):6.1f} s   runs: "
                + ", ".join(f"{v:.1f}" for v in values)
            )


if __name__ == "__main__":
    main()
