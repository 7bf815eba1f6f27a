"""Molecule's delegated driver, backed by the project's own LXC lab: one small site per scenario.

    python -m provisioner.backends.lxc.molecule_lab create  --name NAME --ephemeral DIR \
        [--hosts H ...] [--extra FILE] [--fresh]
    python -m provisioner.backends.lxc.molecule_lab destroy --name NAME --ephemeral DIR

`create` writes a tiny site file (site name derived from NAME), builds it with the LXC backend (plan + apply,
the same code `provision apply` runs) and writes what Molecule and Ansible need to reach the machines:

- `--instance-config` (Molecule's instance_config.yml): address, user `provision`, the site's controller key
  as identity_file, port 22, for every host asked for;
- `<ephemeral>/known_hosts`: the host keys the backend pinned, so SSH runs with StrictHostKeyChecking=yes;
- `--inventory-dir`: `provisioner_site.yml`, the inventory `provision apply` would write for this site
  (groups env_<env>, role_<role>, tier_<tier>, gateways and their facts), so roles see the same variables.

A host is `NAME[:ENV[:ROLE,ROLE]]`; `gateway` is the environment gateway (always built). The environment
of a host named `<env>-...` may be left out. Addresses come only from 10.94.0.0/16.
`destroy` removes every segment and machine carrying the site's labels, and the site's state.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from provisioner.ansible_run.inventory import build_inventory, inventory_yaml
from provisioner.backends.lxc.backend import LxcBackend
from provisioner.errors import ProvisionError
from provisioner.paths import inventories_dir
from provisioner.planning.desired import GATEWAY
from provisioner.site.load import LoadedSite, load_site
from provisioner.workspace.secrets import ensure_site_secrets
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState
from provisioner.workspace.ssh_sockets import close_masters

NETWORK = "10.94"  # the range reserved for Molecule scenarios; other suites use 10.90-10.93
TIERS = {"dev": "development", "test": "test", "prod": "production"}
COLOURS = {"development": "green", "test": "yellow", "production": "red"}
DATA = {"development": "dummy", "test": "anonymised", "production": "live"}
DEFAULT_ENVS = ("dev", "prod")
EXAMPLE_SITE = inventories_dir() / "example" / "site.yml"


def site_name(name: str) -> str:
    """2-12 lower-case letters or digits, starting with a letter, stable for a given NAME."""
    clean = re.sub(r"[^a-z0-9]", "", name.lower())
    if not clean or not clean[0].isalpha():
        clean = "m" + clean
    if len(clean) < 2:
        clean += "0"
    if len(clean) > 12:  # keep different long names apart
        clean = clean[:8] + hashlib.sha1(name.encode()).hexdigest()[:4]
    return clean


def parse_host(text: str) -> tuple[str, str | None, list[str]]:
    parts = text.split(":")
    name = parts[0].strip()
    env = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
    roles = [r for r in (parts[2].split(",") if len(parts) > 2 else []) if r.strip()]
    if name == GATEWAY:
        return name, None, []
    if env is None:
        env = name.split("-", 1)[0]
    return name, env, roles


def site_data(site: str, hosts: list[str], envs: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """The site file of a scenario: environments of 10.94.<10*(i+1)>.0/24, hosts at .11, .12, ..."""
    parsed = [parse_host(h) for h in hosts]
    tiers: dict[str, str] = {}
    for spec in [*envs, *(e for _, e, _ in parsed if e)]:
        env, _, given = spec.partition(":")
        tier = given or TIERS.get(env, "development")
        if tier not in COLOURS:
            raise ProvisionError(f"environment {env}: tier '{tier}' is not one of {', '.join(COLOURS)}")
        tiers.setdefault(env, tier)
    for name, tier in TIERS.items():  # the path to live needs every tier: a missing one joins without hosts
        if tier not in tiers.values() and name not in tiers:
            tiers[name] = tier
    order = list(COLOURS)  # development, test, production: the release path runs this way
    environments: list[dict[str, Any]] = []
    for index, (env, tier) in enumerate(sorted(tiers.items(), key=lambda item: order.index(item[1]))):
        third = 10 * (index + 1)
        environments.append(
            {
                "name": env,
                "tier": tier,
                "segment": {"vlan": third, "cidr": f"{NETWORK}.{third}.0/24", "gateway": f"{NETWORK}.{third}.1"},
                "colour": COLOURS[tier],
                "data": DATA[tier],
            }
        )
    prefix = {e["name"]: e["segment"]["cidr"].rsplit(".", 1)[0] for e in environments}
    next_host: dict[str, int] = {}
    site_hosts = []
    for name, host_env, roles in parsed:
        if name == GATEWAY or host_env is None:
            continue
        env = host_env
        if env not in prefix:
            raise ProvisionError(f"host {name}: unknown environment '{env}'")
        number = next_host[env] = next_host.get(env, 10) + 1
        site_hosts.append({"name": name, "environment": env, "address": f"{prefix[env]}.{number}", "roles": roles})
    example = yaml.safe_load(EXAMPLE_SITE.read_text())
    data: dict[str, Any] = {
        "site": site,
        "description": "Molecule scenario lab (disposable)",
        "backend": {"type": "lxc"},
        "management": {"cidr": f"{NETWORK}.0.0/24", "controller": f"{NETWORK}.0.1", "gateway": f"{NETWORK}.0.254"},
        "environments": environments,
        "hosts": site_hosts,
        # the example company's demo people and deploy identity (public keys only)
        "people": example.get("people", []),
        "deploy": example.get("deploy"),
        "flows": [],
        "releases": {"path": [e["name"] for e in environments], "required_approvals": 1},
        "waivers": [],
    }
    data.update(extra)
    return data


class Lab:
    def __init__(self, name: str, ephemeral: Path):
        self.name = name
        self.site_name = site_name(name)
        self.ephemeral = ephemeral.resolve()
        self.site_file = self.ephemeral / "site" / "site.yml"
        self.state = SiteState(self.site_name, self.ephemeral / "provision" / self.site_name)
        self.known_hosts = self.ephemeral / "known_hosts"

    def write_site(self, data: dict[str, Any]) -> LoadedSite:
        self.site_file.parent.mkdir(parents=True, exist_ok=True)
        self.site_file.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_site(self.site_file)

    def backend(self, site: LoadedSite) -> LxcBackend:
        backend = LxcBackend(site, self.state)
        backend.preflight()
        return backend

    def create(
        self,
        hosts: list[str],
        envs: list[str],
        extra: dict[str, Any],
        instance_config: Path | None,
        inventory_dir: Path | None,
        fresh: bool = False,
    ) -> LoadedSite:
        site = self.write_site(site_data(self.site_name, hosts, envs, extra))
        backend = self.backend(site)
        with self.state.lock():
            if fresh:  # whatever an interrupted run left of this site goes first: converge starts from scratch
                leftovers = backend.destroy_plan(None)
                if not leftovers.empty:
                    say(f"removing what a previous run left of site '{site.name}'")
                    backend.apply(leftovers, say)
            plan = backend.plan()
            backend.apply(plan, say)
            ensure_site_secrets(self.state, site.model)
        self.known_hosts.write_text(self.state.known_hosts.read_text())
        if instance_config is not None:
            write_instance_config(instance_config, site, self.state, [parse_host(h)[0] for h in hosts])
        if inventory_dir is not None:
            inventory = build_inventory(site, secrets_dir=self.state.secrets_dir)
            inventory_dir.mkdir(parents=True, exist_ok=True)
            (inventory_dir / "provisioner_site.yml").write_text(
                "# Written by provisioner.backends.lxc.molecule_lab: "
                "the inventory `provision apply` writes for this site.\n" + inventory_yaml(inventory)
            )
        return site

    def destroy(self, instance_config: Path | None, inventory_dir: Path | None) -> None:
        # Discovery goes by the site's labels, so a minimal site file of the same name finds everything.
        site = self.write_site(site_data(self.site_name, [], list(DEFAULT_ENVS), {}))
        backend = self.backend(site)
        with self.state.lock():
            plan = backend.destroy_plan(None)
            if not plan.empty:
                backend.apply(plan, say)
            backend.cleanup_site()
        self.state.forget_lab()
        self.known_hosts.unlink(missing_ok=True)
        close_masters(self.ephemeral / "cp")
        if instance_config is not None:
            instance_config.parent.mkdir(parents=True, exist_ok=True)
            instance_config.write_text("[]\n")
        if inventory_dir is not None:
            (inventory_dir / "provisioner_site.yml").unlink(missing_ok=True)


def write_instance_config(path: Path, site: LoadedSite, state: SiteState, names: list[str]) -> None:
    addresses = {m.name: str(m.address) for m in LxcBackend(site, state).desired.machines}
    instances = [
        {
            "instance": name,
            "address": addresses[name],
            "user": AUTOMATION_USER,
            "port": 22,
            "identity_file": str(state.controller_key),
        }
        for name in names
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(instances, sort_keys=False))


def say(message: str) -> None:
    print(f"molecule_lab: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provisioner.backends.lxc.molecule_lab", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("action", choices=("create", "destroy"))
    parser.add_argument("--name", required=True, help="scenario name; the site name is derived from it")
    parser.add_argument(
        "--ephemeral",
        type=Path,
        default=Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ".")),
        help="where the site file, state and known_hosts go (default: $MOLECULE_EPHEMERAL_DIRECTORY)",
    )
    parser.add_argument("--hosts", nargs="*", default=[GATEWAY], help="NAME[:ENV[:ROLE,ROLE]] ... (default: gateway)")
    parser.add_argument(
        "--envs", nargs="*", default=list(DEFAULT_ENVS), help="environments NAME[:TIER] (default: dev prod)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="create: first remove anything a previous run left of the site"
    )
    parser.add_argument("--extra", type=Path, help="YAML mapping of site-file keys to set (people, flows, ...)")
    parser.add_argument(
        "--instance-config",
        type=Path,
        default=Path(os.environ["MOLECULE_INSTANCE_CONFIG"]) if os.environ.get("MOLECULE_INSTANCE_CONFIG") else None,
        help="Molecule's instance config file to write (default: $MOLECULE_INSTANCE_CONFIG)",
    )
    parser.add_argument(
        "--inventory-dir",
        type=Path,
        default=Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
        if os.environ.get("MOLECULE_INVENTORY_FILE")
        else None,
        help="where to write the site's inventory (default: the directory of $MOLECULE_INVENTORY_FILE)",
    )
    args = parser.parse_args(argv)
    lab = Lab(args.name, args.ephemeral)
    try:
        if args.action == "create":
            extra = yaml.safe_load(args.extra.read_text()) if args.extra else {}
            site = lab.create(args.hosts, args.envs, extra or {}, args.instance_config, args.inventory_dir, args.fresh)
            say(f"site '{site.name}' is up; state in {lab.state.root}")
        else:
            lab.destroy(args.instance_config, args.inventory_dir)
            say(f"site '{lab.site_name}' destroyed")
    except ProvisionError as exc:
        print(f"molecule_lab: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
