"""The LXC lab tests build a real site on this machine, under its own name and addresses."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, example_data, lab_prerequisites_missing, private_key_copies, run_cli, write_site

from provisioner.site.load import load_site
from provisioner.workspace.site_state import SiteState

LAB_SITE = "spine"
DEMO_KEYS = ROOT / "inventories" / "example" / "demo-keys"  # the example people's keys: verify attempts logins


@functools.cache
def verify_keys() -> Path:
    """The demo keys as `verify --keys` takes them: private copies, mode 0600 (the checkout's are 0644, which
    verify refuses)."""
    folder = Path(tempfile.mkdtemp(prefix="lab-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    return private_key_copies(DEMO_KEYS, folder)


# The shared lab: built by the lifecycle module, used by every module marked shared_lab("use"), destroyed last.
SHARED_PHASES = {"build": 0, "use": 1, "destroy": 2}


def _order(item) -> tuple[int, int]:
    shared = item.get_closest_marker("shared_lab")
    phase = SHARED_PHASES[shared.args[0]] if shared else -1
    return (item.get_closest_marker("contract") is not None, phase)


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_lab(phase): runs on the one shared LXC lab (build, use, destroy)")
    config.addinivalue_line("markers", "libvirt_lab: boots libvirt guests under TCG")
    config.addinivalue_line("markers", "proxmox_lab: the Proxmox fake, its VMs realized as LXC containers")
    config.addinivalue_line(
        "markers",
        "own_lab: builds a lab of its own (site name, bridges, addresses), so it may run beside the shared lab",
    )


def _xdist_group(item) -> str:
    """With pytest-xdist (--dist loadgroup): a test file's tests stay together on one worker, in order. Two lab
    groups, one per worker: the local LXC labs (the shared lab, molecule, releases, data, report: one at a time,
    and the shared lab is one worker's), and the labs with names, networks, tables and probes of their own (libvirt,
    whose guests run under TCG, the Proxmox fake, make demo's example site), so that neither worker waits for the
    other's labs. Measured on a quiet machine, 39.7 min wall: the LXC group 38.7 min with make demo (6.4), the
    other 25.8 plus the unit tests."""
    if any(item.get_closest_marker(m) for m in ("libvirt_lab", "proxmox_lab", "own_lab")):
        return "own-labs"
    if item.get_closest_marker("lab") or item.get_closest_marker("contract"):
        return "lxc-labs"
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    items.sort(key=_order)  # stable: the rest keep their order
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
    reason = lab_prerequisites_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI must run the lab tests, but {reason}")
    for item in items:
        if item.get_closest_marker("lab"):
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_collection_finish(session):
    """Under `pytest -n N --dist loadgroup`, the groups must hold: two LXC labs at once would break the shared lab."""
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    if getattr(session.config.option, "loadgroup", False) and grouped and not any("@" in i.nodeid for i in grouped):
        raise pytest.UsageError("pytest-xdist could not group the tests (is pytest >= 9.2 installed?)")


def template_marker(name: str) -> Path:
    """The file the lab site's free text would create on the controller if anything ever ran it as a template."""
    return Path(f"/tmp/provisioner-template-ran-{name}")


def hostile_text(name: str) -> str:
    """Jinja in all three forms (expression, statement, comment); run as a template, it would touch the marker."""
    return f"{{{{ lookup('pipe', 'touch {template_marker(name)}') }}}} {{% if true %}}x{{% endif %}} {{# c #}}"


def lab_site_data(name: str = LAB_SITE, net: int = 91) -> dict:
    """The example company under another name and range, so it never collides with a demo lab. Every free-text
    field (site, environments, flows, people's full names) ends in template syntax, as a pull request could write
    it: the lab proves on its hosts that such text arrives as written and never runs (issue 16)."""
    text = json.dumps(example_data()).replace("10.90.", f"10.{net}.")
    data = json.loads(text)
    data["site"] = name
    # people's workstations (issue 18): an access network reaching dev and test on SSH only; verify attempts NET-2
    # from it through the controller's probe there
    data["access_networks"] = [
        {"name": "office", "cidr": f"10.{net}.50.0/24", "description": "developers' and testers' desks",
         "reaches": ["dev", "test"], "vlan": 50},
    ]  # fmt: skip
    hostile = hostile_text(name)
    data["description"] += " " + hostile
    for item in (*data["environments"], *data["flows"], *data["access_networks"]):
        item["description"] += " " + hostile
    for person in data["people"]:
        person["full_name"] += " " + hostile
    deploy = data.get("deploy") or {}
    if deploy.get("key_file"):  # the copy lives elsewhere: point at the example's demo key
        deploy["key_file"] = str(ROOT / "inventories" / "example" / deploy["key_file"])
    return data


def _sigint_as_at_a_terminal() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
            # Ctrl-C reaches the command as it does at a terminal, however the suite was started: a suite started
            # in the background of a non-interactive shell inherits SIGINT ignored, and so would the command
            preexec_fn=_sigint_as_at_a_terminal,
        )

    @property
    def site(self):
        return load_site(self.site_file)

    @property
    def state(self) -> SiteState:
        return SiteState(self.site.name, self.state_dir / self.site.name)


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory) -> Iterator:
    made: dict[str, Lab] = {}

    def make(name: str = LAB_SITE, net: int = 91) -> Lab:
        if name in made:  # one lab per site name in a session: the shared lab is asked for by many modules
            return made[name]
        base = tmp_path_factory.mktemp(name)
        template_marker(name).unlink(missing_ok=True)
        lab = Lab(
            site_file=write_site(base / "inventories" / name, lab_site_data(name, net)),
            state_dir=base / "state",
            env={"PROVISION_STATE_DIR": str(base / "state")},
        )
        made[name] = lab
        return lab

    yield make
    for lab in made.values():  # never leave a lab behind, whatever the tests did
        lab.cli("destroy", str(lab.site_file), "--confirm-prod", lab.site.name)


@pytest.fixture(scope="session")
def shared_lab(lab_factory) -> Lab:
    """The one LXC lab of the session (the example company as `spine`, 10.91.0.0/16); built on first use."""
    return lab_factory(LAB_SITE, 91)


def ensure_applied(lab: Lab) -> None:
    """Apply unless the plan is empty (a module run on its own builds the lab it needs)."""
    plan = lab.cli("plan", str(lab.site_file), "--json")
    assert plan.rc == 0, plan.stderr
    if plan.json["changes"]:
        result = lab.cli("apply", str(lab.site_file), "--json", timeout=1500)
        assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]


def assert_clean(lab: Lab) -> None:
    """What a module using the shared lab must leave: every host as the site file says, and verify passing."""
    plan = lab.cli("plan", str(lab.site_file), "--json")
    assert plan.rc == 0 and plan.json["changes"] == [], f"the lab drifted from its site file: {plan.stdout[-2000:]}"
    result = lab.cli("verify", str(lab.site_file), "--keys", str(verify_keys()), "--json", timeout=900)
    assert result.rc == 0, "the lab is not clean: " + json.dumps(result.json.get("failures"), indent=1)[:4000]


@pytest.fixture(scope="module")
def lab(shared_lab) -> Iterator[Lab]:
    """The shared lab, applied, for one module; at the module's end it must be clean again for the next one."""
    ensure_applied(shared_lab)
    yield shared_lab
    assert_clean(shared_lab)
