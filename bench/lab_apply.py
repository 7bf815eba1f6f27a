"""Benchmark of the LXC lab, side by side in one run on the same lab (site `bench`, 10.92.x). Each round: a cold
apply with a cached base image (the lab destroyed first), a no-op `provision apply`, a no-op `provision apply --full`,
a no-op of plain `ansible-playbook` with the generated inventory and ansible.cfg, and `provision verify`. Prints each
figure's median over the rounds with its target and the ratio; asserts nothing. With --drift it also makes drift by
hand on the lab (a changed managed file, a removed authorized key, a flushed nft table) and shows that a plain
`provision apply` repairs it. With --mitogen it also times plain ansible-playbook with Mitogen's strategy (which
provision's own run uses) and a cold apply without it.

    .venv/bin/python bench/lab_apply.py [--rounds N] [--uncached-image] [--drift]

Targets on the 2-core machine: cold apply ≤ 45 s; no-op `provision apply` ≤ half the plain ansible-playbook no-op;
verify ≤ 8 s.
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
from xml.etree import ElementTree

import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE = "bench"
KEYS = ROOT / "inventories" / "example" / "demo-keys"
VENV_BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str], what: str, allowed: tuple[int, ...] = (0,)) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT)
    elapsed = time.monotonic() - started
    if result.returncode not in allowed:
        sys.exit(f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return elapsed, result.stdout


def provision(*args: str, env: dict[str, str]) -> tuple[float, str]:
    return timed([sys.executable, "-m", "provisioner", *args], env, f"provision {' '.join(args)}")


def timed_verify(site_file: Path, keys: Path, env: dict[str, str]) -> tuple[float, str]:
    """`provision verify`, timed; a failed control (exit 1) is a figure too, and the failures are returned, with
    how long the suite's own session took (its JUnit report: from the first worker's start to the last result)."""
    seconds, out = timed(
        [sys.executable, "-m", "provisioner", "verify", str(site_file), "--keys", str(keys), "--json"],
        env,
        "provision verify",
        allowed=(0, 1),
    )
    result = json.loads(out)
    failures = result.get("failures") or []
    junit = Path(result["run_dir"]) / "junit.xml"
    session = ""
    if junit.exists():
        suite = ElementTree.parse(junit).getroot().find("testsuite")
        session = f" (the suite's session {float(suite.get('time', 0)):.1f} s)" if suite is not None else ""
    return seconds, ("all controls pass" if not failures else f"FAILED: {json.dumps(failures)[:600]}") + session


def plain_playbook(site_file: Path, state: Path, env: dict[str, str]) -> tuple[float, str]:
    command = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        str(site_file.parent / "hosts.yml"),
        "playbooks/site.yml",
    ]
    return timed(command, {**env, "ANSIBLE_CONFIG": str(state / "ansible.cfg")}, "plain ansible-playbook")


def mitogen_env() -> dict[str, str]:
    """Ansible settings for Mitogen's strategy: provision's own (runner.mitogen_strategy)."""
    from provisioner.ansible_run.runner import mitogen_strategy

    settings = mitogen_strategy()
    if not settings:
        sys.exit("--mitogen: the mitogen package is not installed in this venv (or ANSIBLE_STRATEGY is set)")
    return settings


def changed_count(apply_json: str) -> int:
    return int(json.loads(apply_json)["stats"]["changed"])


def decided(apply_json: str) -> str:
    """Which hosts ran the playbook and why, from the run's skip-decision.json."""
    decision_file = Path(json.loads(apply_json)["run_dir"]) / "skip-decision.json"
    if not decision_file.exists():
        return "no decision recorded"
    decision = json.loads(decision_file.read_text())
    ran = "; ".join(f"{h} ({why})" for h, why in decision["run"].items()) or "none"
    return f"ran: {ran}; left out: {len(decision['skip'])}"


def make_drift(site_file: Path) -> list[str]:
    """Drift by hand on three hosts, as root inside the containers; returns what was done."""
    data = yaml.safe_load(site_file.read_text())
    db = next(h["name"] for h in data["hosts"] if "db" in h.get("roles", []))
    app = next(h["name"] for h in data["hosts"] if "app" in h.get("roles", []))
    other = next(h["name"] for h in data["hosts"] if h["name"] not in (db, app))
    keys = "/etc/ssh/authorized_keys"
    done = []
    for host, script, what in (
        (app, "echo drift >> /etc/motd", "appended a line to /etc/motd"),
        (other, f"k=$(ls {keys} | grep -vx provision | head -1); rm {keys}/$k && echo $k", f"removed from {keys}:"),
        (db, "nft flush ruleset", "flushed the nft ruleset"),
    ):
        result = subprocess.run(
            ["lxc-attach", "-n", f"{SITE}-{host}", "--", "sh", "-c", script], capture_output=True, text=True
        )
        failed = "" if result.returncode == 0 else f" (FAILED: {result.stderr.strip()})"
        done.append(f"{host}: {what} {result.stdout.strip()}{failed}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds: cold apply, no-ops and verify in each")
    parser.add_argument("--uncached-image", action="store_true", help="also time a cold apply that builds the base")
    parser.add_argument("--drift", action="store_true", help="make drift by hand and show apply repairs it")
    parser.add_argument(
        "--mitogen",
        action="store_true",
        help="also time plain ansible-playbook with Mitogen's strategy, and provision's cold apply without it",
    )
    args = parser.parse_args()

    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]
    from helpers import private_key_copies

    from provisioner.backends.lxc import base_image

    data = yaml.safe_load((ROOT / "inventories/example/site.yml").read_text())
    data = json.loads(json.dumps(data).replace("10.90.", "10.92."))
    data["site"] = SITE
    work = Path(tempfile.mkdtemp(prefix="provisioner-bench-"))
    site_file = work / "inventories" / SITE / "site.yml"
    site_file.parent.mkdir(parents=True)
    site_file.write_text(yaml.safe_dump(data, sort_keys=False))
    state = work / "state" / SITE
    env = {"PROVISION_STATE_DIR": str(work / "state")}
    keys = private_key_copies(KEYS, work / "keys")
    figures: dict[str, list[float]] = {}
    notes: list[str] = []

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    try:
        cached = (base_image.lxc_path() / base_image.base_name()).exists()
        if args.uncached_image or not cached:
            if args.uncached_image:
                shutil.rmtree(base_image.lxc_path() / base_image.base_name(), ignore_errors=True)
            add("cold apply (building the base image)", provision("apply", str(site_file), env=env)[0])
            provision("destroy", str(site_file), "--confirm-prod", SITE, env=env)
        for round_number in range(args.rounds):
            if round_number:  # every round starts from nothing: the cold apply is a median too, not one sample
                provision("destroy", str(site_file), "--confirm-prod", SITE, env=env)
            add("cold apply (cached base image)", provision("apply", str(site_file), env=env)[0])
            seconds, out = provision("apply", str(site_file), "--json", env=env)
            add("provision apply, no-op", seconds)
            notes.append(f"no-op apply: {changed_count(out)} changed; {decided(out)}")
            add("provision apply --full, no-op", provision("apply", str(site_file), "--full", env=env)[0])
            add("plain ansible-playbook, no-op", plain_playbook(site_file, state, env)[0])
            seconds, verdict = timed_verify(site_file, keys, env)
            add("provision verify", seconds)
            notes.append(f"verify {seconds:.1f} s: {verdict}")
        if args.drift:
            notes.extend(f"drift: {what}" for what in make_drift(site_file))
            seconds, out = provision("apply", str(site_file), "--json", env=env)
            add("provision apply repairing drift", seconds)
            notes.append(f"drift repaired: {changed_count(out)} changed; {decided(out)}")
            seconds, out = provision("apply", str(site_file), "--json", env=env)
            notes.append(f"apply after the repair: {changed_count(out)} changed; {decided(out)}")
            add(
                "provision verify after the repair",
                provision("verify", str(site_file), "--keys", str(keys), env=env)[0],
            )
        if args.mitogen:
            mitogen = mitogen_env()
            add("plain ansible-playbook, no-op, Mitogen", plain_playbook(site_file, state, {**env, **mitogen})[0])
            provision("destroy", str(site_file), "--confirm-prod", SITE, env=env)
            linear = {**env, "ANSIBLE_STRATEGY": "linear"}  # provision's run without Mitogen
            seconds, out = provision("apply", str(site_file), "--json", env=linear)
            add("cold apply, Ansible's own linear strategy", seconds)
            seconds, out = provision("apply", str(site_file), "--full", "--json", env=env)
            notes.append(f"apply --full (Mitogen) after the linear cold apply: {changed_count(out)} changed")
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
        print(
            f"  {name:40s} median {statistics.median(values):6.1f} s   runs: " + ", ".join(f"{v:.1f}" for v in values)
        )
    print("Targets:")

    def median(name: str) -> float | None:
        return statistics.median(figures[name]) if figures.get(name) else None

    cold, noop, plain, verify = (
        median(n)
        for n in (
            "cold apply (cached base image)",
            "provision apply, no-op",
            "plain ansible-playbook, no-op",
            "provision verify",
        )
    )
    if cold is not None:
        print(f"  cold apply {cold:.1f} s, target ≤ 45 s: {cold / 45:.2f} of the target")
    if noop is not None and plain:
        print(
            f"  no-op apply / plain ansible-playbook no-op = {noop:.1f} / {plain:.1f} = {noop / plain:.2f}, "
            "target ≤ 0.50"
        )
    if verify is not None:
        print(f"  verify {verify:.1f} s, target ≤ 8 s: {verify / 8:.2f} of the target")
    for note in notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
