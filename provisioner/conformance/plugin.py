"""pytest plugin behind `provision verify`: the site as fixtures, control IDs on checks, evidence in JSON."""

from __future__ import annotations

import atexit
import datetime as dt
import itertools
import json
import os
import shutil
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import pytest

from provisioner.backends.base import Backend, HypervisorFirewall
from provisioner.conformance import reachability
from provisioner.conformance.controls import CONTROLS
from provisioner.conformance.people_keys import people_key_problems
from provisioner.conformance.results import CheckResult, Status
from provisioner.remote.ssh import Remote
from provisioner.site import policy
from provisioner.site.load import LoadedSite, load_site
from provisioner.site.model import Host, Person
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import SiteState

RESULTS_FILE = "results.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("provisioner", "provisioner conformance suite")
    group.addoption("--provision-site", help="site file to verify")
    group.addoption("--provision-keys", default=None, help="folder of people's private keys for login attempts")
    group.addoption("--provision-results", default=None, help="folder for results.json")
    group.addoption(
        "--provision-controls",
        default=None,
        help="comma-separated control IDs: run only the checks of these controls (the others are deselected)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "control(id): the A.8.31 control a check proves")
    config.addinivalue_line(
        "markers",
        "waits(seconds): a check that waits on the network (probes, logins, logs arriving) for about that long; "
        "such checks start first, one per worker",
    )
    config._provision_results = []  # type: ignore[attr-defined]


# ---- the site ----------------------------------------------------------------------------------------
class Lab:
    """What checks need: the site, its policy, a way into each host, the people's keys."""

    def __init__(self, site: LoadedSite, keys_dir: Path | None, demo_keys: bool = False):
        self.site = site
        self.model = site.model
        self.state = SiteState(site.name)
        self.remote = Remote(self.state)
        self.keys_dir = keys_dir
        # the site's demo-keys/ folder (no --keys): the example's public keys, used through private copies
        self.demo_keys = demo_keys
        self._key_copies: Path | None = None

    @cached_property
    def backend(self) -> Backend:
        from provisioner.backends import backend_for

        return backend_for(self.site, self.state)

    def hypervisor_access(self) -> list[dict[str, Any]] | None:
        """Rights at the hypervisor read back live from it; None where the backend has no hypervisor accounts."""
        from provisioner.backends import backend_for

        backend = backend_for(self.site, self.state)
        backend.preflight()
        return backend.hypervisor_access()

    @cached_property
    def hypervisor_firewall(self) -> HypervisorFirewall | None:
        """The hypervisor's own firewall in front of the hosts, read back live once per run; None where the
        backend has none."""
        self.backend.preflight()
        return self.backend.hypervisor_firewall()

    def gateway_counters(self) -> dict[str, int] | None:
        """The gateway's named counters (packets), read over SSH; None where they cannot be read (then no refusal
        is corroborated by them)."""
        result = self.remote.run_as_root(
            str(self.model.management.gateway), f"nft -j list counters table inet {reachability.GATEWAY_TABLE}"
        )
        if not result.ok:
            return None
        return reachability.parse_counters(json.loads(result.stdout))

    def hosts(self, tier: str | None = None) -> list[Host]:
        return [h for h in self.model.hosts if tier is None or self.model.environment(h.environment).tier == tier]

    def rooted_hosts(self) -> list[Host]:
        """Hosts outside production where someone other than an admin has root (sudo): where an attack on the
        hypervisor would start."""
        rooted = {
            env.name
            for env in self.model.environments
            if env.tier != "production"
            and any(
                "admin" not in person.roles and policy.access_level(self.model, person, env) == "sudo"
                for person in self.model.people
            )
        }
        return [h for h in self.model.hosts if h.environment in rooted]

    def host(self, name: str) -> Host:
        return next(h for h in self.model.hosts if h.name == name)

    def people(self, *roles: str) -> list[Person]:
        return [p for p in self.model.people if set(roles) & set(p.roles)]

    def key_of(self, person: str) -> Path | None:
        """The person's key from --keys, used in place once checked (this user's, mode 0600: `provision verify`
        refused the run otherwise); from the site's demo-keys/ folder, a private copy (mode 0600): those keys
        are public in the repository, and a git checkout does not keep file modes."""
        if self.keys_dir is None or not (self.keys_dir / person).is_file():
            return None
        if not self.demo_keys:
            problems = people_key_problems(self.keys_dir, [person])
            if problems:
                raise ValueError(f"refusing the private key {problems[0]}")
            return self.keys_dir / person
        if self._key_copies is None:
            self._key_copies = Path(tempfile.mkdtemp(prefix="provisioner-keys-"))
            atexit.register(shutil.rmtree, self._key_copies, True)
        copy = self._key_copies / person
        if not copy.exists():
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write((self.keys_dir / person).read_bytes())
        return copy


def _lab(config: pytest.Config) -> Lab:
    if not hasattr(config, "_provision_lab"):
        site = load_site(config.getoption("--provision-site"))
        keys = config.getoption("--provision-keys")
        default_keys = site.directory / "demo-keys"
        keys_dir = Path(keys) if keys else (default_keys if default_keys.is_dir() else None)
        config._provision_lab = Lab(site, keys_dir, demo_keys=not keys)  # type: ignore[attr-defined]
    return config._provision_lab  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Lab:
    return _lab(request.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Checks name what they iterate over; the site file says what exists."""
    if not metafunc.config.getoption("--provision-site"):
        return
    lab = _lab(metafunc.config)
    params: dict[str, list[str]] = {
        "host_name": [h.name for h in lab.hosts()],
        "prod_host_name": [h.name for h in lab.hosts("production")],
        "source_name": [
            lab.model.hosts_in(e.name)[0].name for e in lab.model.environments if lab.model.hosts_in(e.name)
        ],
        "developer_name": [p.name for p in lab.people("developer")],
        "app_host_name": [h.name for h in lab.hosts() if "app" in h.roles],
        "prod_app_host_name": [h.name for h in lab.hosts("production") if "app" in h.roles],
        "rooted_host_name": [h.name for h in lab.rooted_hosts()],
        "access_network_name": [a.name for a in lab.model.access_networks],
    }
    for fixture, values in params.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, values, ids=values)
            if not values and fixture in OPTIONAL_SUBJECTS:
                _left_out(metafunc.config).add(metafunc.definition.nodeid)


# Checks over something a site may not have at all: without any, the check is left out of the run (a site that
# declares no access network has no path from one to attempt), rather than reported as skipped.
OPTIONAL_SUBJECTS = ("access_network_name",)


def _left_out(config: pytest.Config) -> set[str]:
    if not hasattr(config, "_provision_left_out"):
        config._provision_left_out = set()  # type: ignore[attr-defined]
    return config._provision_left_out  # type: ignore[attr-defined]


def selected_controls(config: pytest.Config) -> set[str] | None:
    """The control IDs of --provision-controls; None: every control."""
    option = config.getoption("--provision-controls")
    if option is None:
        return None
    return {part.strip() for part in str(option).split(",") if part.strip()}


def _control_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("control")
    return str(marker.args[0]) if marker is not None and marker.args else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the checks whose subjects the site does not have (see OPTIONAL_SUBJECTS), and with
    --provision-controls the checks of every other control."""
    nothing_to_check = _left_out(config)
    wanted = selected_controls(config)
    left_out = [
        item
        for item in items
        if item.nodeid.split("[", 1)[0] in nothing_to_check or (wanted is not None and _control_of(item) not in wanted)
    ]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
    items[:] = interleaved(items)


def _waits(item: pytest.Item) -> float:
    marker = item.get_closest_marker("waits")
    return float(marker.args[0]) if marker is not None and marker.args else 0.0


def interleaved(items: list[pytest.Item]) -> list[pytest.Item]:
    """The checks that wait, longest first, each followed by a quick one: with pytest-xdist handing out tests two
    at a time at first and then one by one (verify passes --maxschedchunk 1), each worker starts on a long wait and
    none of them is the run's tail (three reachability checks in a row on one worker made verify 3 s longer)."""
    waiting = sorted((item for item in items if _waits(item) > 0), key=_waits, reverse=True)
    quick = [item for item in items if _waits(item) <= 0]
    order: list[pytest.Item] = []
    for slow, fast in itertools.zip_longest(waiting, quick):
        order += [item for item in (slow, fast) if item is not None]
    return order


# ---- evidence ------------------------------------------------------------------------------------------
class Evidence:
    def __init__(self) -> None:
        self.expected: str = ""
        self.observed: str = ""
        self.lines: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def expect(self, text: str) -> None:
        self.expected = text

    def observe(self, text: str) -> None:
        self.observed = text

    def note(self, text: str) -> None:
        self.lines.append(text)

    def row(self, **row: Any) -> None:
        self.rows.append(row)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    record = Evidence()
    request.node._provision_evidence = record
    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("control")
    if marker is None or report.when not in ("setup", "call"):
        return
    if report.when == "setup" and report.passed:
        return
    record: Evidence | None = getattr(item, "_provision_evidence", None)
    callspec = getattr(item, "callspec", None)
    subject = ",".join(str(v) for v in callspec.params.values()) if callspec else "site"
    status: Status = "pass" if report.passed else "skip" if report.skipped else "fail"
    detail = ""
    if report.failed:
        detail = (str(call.excinfo.value) if call.excinfo else report.longreprtext).strip().splitlines()[0]
    elif report.skipped and isinstance(report.longrepr, tuple):
        detail = str(report.longrepr[2])
    result: CheckResult = {
        "control": marker.args[0],
        "check": item.originalname if hasattr(item, "originalname") else item.name,
        "host": subject,
        "status": status,
        "expected": record.expected if record else "",
        "observed": record.observed if record else "",
        "evidence": "\n".join([*(record.lines if record else []), detail]).strip()[:4000],
        "rows": record.rows if record else [],
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration": round(report.duration, 3),
    }
    report.user_properties.append(("provision", result))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == "provision":
            _RESULTS.append(cast(CheckResult, value))


_RESULTS: list[CheckResult] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # xdist worker: the controller process collects
    folder = session.config.getoption("--provision-results")
    if not folder:
        return
    results = sorted(_RESULTS, key=lambda r: (r["control"], r["check"], r["host"]))
    payload = {
        "site": session.config.getoption("--provision-site"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "controls": {cid: c.as_dict() for cid, c in CONTROLS.items()},
        "results": results,
    }
    path = Path(folder) / RESULTS_FILE
    write_atomic(path, json.dumps(payload, indent=1))
