"""Benchmark of the Proxmox backend against the fake: plan and apply a 500-VM site, then plan it again.
Prints seconds and API calls per step; asserts nothing.

    .venv/bin/python bench/proxmox_plan.py [--vms 500] [--task-seconds 0.02]

Target on the 2-core machine: `plan` of the built 500-VM site within 2 s, with a number of calls that does
not grow with the number of VMs. The fake's VMs are not booted (no LXC), so apply does not wait for SSH.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "fakes")]

from helpers import example_data, proxmox_backend, write_site  # noqa: E402
from pvefake import FakePve  # noqa: E402

from provisioner.backends.proxmox.backend import ProxmoxBackend  # noqa: E402
from provisioner.site.load import load_site  # noqa: E402
from provisioner.workspace.site_state import SiteState  # noqa: E402


def big_site(fake: FakePve, vms: int) -> dict:
    data = example_data()
    data["site"] = "pvbench"
    data["management"] = {"cidr": "10.70.0.0/24", "controller": "10.70.0.1", "gateway": "10.70.0.254", "vlan": 5}
    data["backend"] = proxmox_backend(fake.host, fake.port)
    hosts = []
    for index, env in enumerate(data["environments"]):
        net = ipaddress.ip_network(f"10.70.{8 + 4 * index}.0/22")
        env["segment"] = {"vlan": env["segment"]["vlan"], "cidr": str(net), "gateway": str(net[1])}
        share = vms // 3 + (1 if index < vms % 3 else 0)
        for n in range(share):
            role = "db" if n % 4 == 0 else "app"
            hosts.append(
                {
                    "name": f"{env['name']}-h{n:04d}",
                    "environment": env["name"],
                    "address": str(net[10 + n]),
                    "roles": [role],
                }
            )
    data["hosts"] = hosts
    data["flows"] = []
    return data


def shape(path: str) -> str:
    return re.sub(r"/\d+(/|$)", r"/{id}\1", re.sub(r"UPID:[^/]+", "{upid}", path))


def report_calls(title: str, seconds: float, calls: list[tuple[str, str]]) -> None:
    print(f"{title}: {seconds:.2f} s, {len(calls)} calls")
    for (method, path), count in sorted(collections.Counter((m, shape(p)) for m, p in calls).items()):
        print(f"    {count:6d}  {method} {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=500)
    parser.add_argument("--task-seconds", type=float, default=0.02)
    args = parser.parse_args()
    fake = FakePve(schema_version="9.1", node="pve1", task_seconds=args.task_seconds)
    fake.start()
    try:
        os.environ["PROVISION_PVE_TOKEN"] = fake.add_token("root@pam", "provisioner", privsep=False)
        fake.add_storage("local-lvm")
        fake.add_bridge("vmbr0")
        fake.add_template(9000, name="debian12-cloud")
        with tempfile.TemporaryDirectory() as tmp:
            site = load_site(write_site(Path(tmp) / "pvbench", big_site(fake, args.vms)))
            state = SiteState(site.name, Path(tmp) / "state")

            def backend() -> ProxmoxBackend:
                made = ProxmoxBackend(site, state)
                made.wait_for_ssh = False
                made.firewall_settle = 0.5  # the fake loads firewall rules at once (pve-firewall: within 10 s)
                return made

            first = backend()
            started = time.monotonic()
            plan = first.plan()
            report_calls(
                f"plan, empty cluster ({len(plan.changes)} changes)", time.monotonic() - started, first.calls.calls
            )

            applier = backend()
            started = time.monotonic()
            applier.apply(plan, lambda message: None)
            report_calls(f"apply, {args.vms} VMs + gateway", time.monotonic() - started, applier.calls.calls)

            for round_ in (1, 2, 3):
                again = backend()
                started = time.monotonic()
                replan = again.plan()
                seconds = time.monotonic() - started
                report_calls(
                    f"plan, built site, round {round_} ({len(replan.changes)} changes)", seconds, again.calls.calls
                )
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
