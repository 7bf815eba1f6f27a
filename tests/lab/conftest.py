"""The LXC lab tests build a real site on this machine, under its own name and addresses."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, example_data, lab_prerequisites_missing, run_cli, write_site

from provisioner.site import load_site
from provisioner.state import SiteState

LAB_SITE = "spine"


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("contract") is not None)  # stable: the rest keep order
    reason = lab_prerequisites_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI must run the lab tests, but {reason}")
    for item in items:
        if "lab" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


def lab_site_data(name: str = LAB_SITE, net: int = 91) -> dict:
    """The example company under another name and range, so it never collides with a demo lab."""
    text = json.dumps(example_data()).replace("10.90.", f"10.{net}.")
    data = json.loads(text)
    data["site"] = name
    deploy = data.get("deploy") or {}
    if deploy.get("key_file"):  # the copy lives elsewhere: point at the example's demo key
        deploy["key_file"] = str(ROOT / "inventories" / "example" / deploy["key_file"])
    return data


@dataclass
class Lab:
    site_file: Path
    state_dir: Path
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 600):
        return run_cli(*args, env=self.env, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        import sys

        return subprocess.Popen(
            [sys.executable, "-m", "provisioner", *args],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def site(self):
        return load_site(self.site_file)

    @property
    def state(self) -> SiteState:
        return SiteState(self.site.name, self.state_dir / self.site.name)


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory) -> Iterator:
    made: list[Lab] = []

    def make(name: str = LAB_SITE, net: int = 91) -> Lab:
        base = tmp_path_factory.mktemp(name)
        lab = Lab(
            site_file=write_site(base / "inventories" / name, lab_site_data(name, net)),
            state_dir=base / "state",
            env={"PROVISION_STATE_DIR": str(base / "state")},
        )
        made.append(lab)
        return lab

    yield make
    for lab in made:  # never leave a lab behind, whatever the tests did
        lab.cli("destroy", str(lab.site_file), "--confirm-prod", lab.site.name)
