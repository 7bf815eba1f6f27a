"""Benchmark of `provision verify`: the example company and a lab twice as large. Prints figures only.

    .venv/bin/python bench/verify_time.py [--rounds N]

Target on the 2-core machine: a full verify of the example under 30 s.
"""

from __future__ import annotations

import argparse
import copy
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
KEYS = ROOT / "inventories" / "example" / "demo-keys"


def site_data(name: str, net: int, copies: int) -> dict:
    data = yaml.safe_load((ROOT / "inventories/example/site.yml").read_text())
    data = json.loads(json.dumps(data).replace("10.90.", f"10.{net}."))
    data["site"] = name
    hosts = []
    for n in range(1, copies + 1):
        for host in data["hosts"]:
            twin = copy.deepcopy(host)
            twin["name"] = host["name"].replace("1", str(n))
            last = int(host["address"].rsplit(".", 1)[1])
            twin["address"] = host["address"].rsplit(".", 1)[0] + f".{last + 50 * (n - 1)}"
            hosts.append(twin)
    data["hosts"] = hosts
    return data


def private_copies(source: Path, folder: Path) -> Path:
    """The demo keys as `verify --keys` takes them: mode 0600 (the checkout's are 0644, which verify refuses)."""
    folder.mkdir(mode=0o700)
    for key in source.iterdir():
        if key.is_file() and key.suffix not in (".pub", ".md"):
            (folder / key.name).write_bytes(key.read_bytes())
            (folder / key.name).chmod(0o600)
    return folder


def provision(*args: str, env: dict[str, str], check: bool = True) -> float:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True,
                            env={**os.environ, **env})  # fmt: skip
    if check and result.returncode != 0:
        sys.exit(f"provision {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="provisioner-bench-verify-"))
    env = {"PROVISION_STATE_DIR": str(work / "state")}
    keys = private_copies(KEYS, work / "keys")
    print(f"provision verify, {os.cpu_count()} cores")
    try:
        for name, net, copies in (("benchv", 96, 1), ("benchw", 97, 2)):
            site_file = work / name / "site.yml"
            site_file.parent.mkdir(parents=True)
            data = site_data(name, net, copies)
            site_file.write_text(yaml.safe_dump(data, sort_keys=False))
            provision("apply", str(site_file), env=env)
            times = [provision("verify", str(site_file), "--keys", str(keys), env=env) for _ in range(args.rounds)]
            provision("destroy", str(site_file), "--confirm-prod", name, env=env, check=False)
            print(f"  {len(data['hosts']):2d} hosts: median {statistics.median(times):5.1f} s   runs: "
                  + ", ".join(f"{t:.1f}" for t in times))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
