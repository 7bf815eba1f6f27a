"""The path to live on a real lab: create -> dev -> test (verify passes) -> approval -> prod, as the deploy
identity through ansible-runner; the ledger verifies and names the approver; a hand edit on prod is detected;
the web banner is shown in test and not in prod, in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import DEMO_KEYS, verify_keys
from helpers import release_artifact
from probes import in_container

from provisioner.releases.ledger import Ledger

pytestmark = [pytest.mark.lab, pytest.mark.shared_lab("use"), pytest.mark.timeout(1500)]

KEYS = DEMO_KEYS


OLDER: dict[str, bytes] = {}  # the ledger and its head before the approval and the prod deploy


def release(lab, *args: str):
    return lab.cli("release", *args, "--site", str(lab.site_file))


def verify(lab, *args: str):
    return lab.cli("verify", str(lab.site_file), "--keys", str(verify_keys()), "--json", *args, timeout=900)


@pytest.fixture(scope="module")
def story(lab, tmp_path_factory):
    """The whole path, once: every step must succeed, in this order."""
    artifact = release_artifact(tmp_path_factory.mktemp("artifacts"), "1.0.0")
    created = release(lab, "create", "--artifact", str(artifact), "--as", "alice", "--sign-key", str(KEYS / "alice"),
                      "--json")  # fmt: skip
    assert created.rc == 0, created.stderr
    rid = created.json["release"]
    for env in ("dev", "test"):
        deployed = release(lab, "deploy", rid, "--env", env, "--as", "dave", "--json")
        assert deployed.rc == 0, deployed.stdout + deployed.stderr
    checked = verify(lab)
    assert checked.rc == 0, json.dumps(checked.json.get("failures"), indent=1)[:4000]
    assert {"env": "test", "release": rid, "result": "ok"} in checked.json["releases_verified"]
    ledger = Ledger(lab.state)
    OLDER.update(ledger=ledger.path.read_bytes(), head=ledger.head_path.read_bytes())  # a signed, older copy
    approved = release(lab, "approve", rid, "--as", "erin", "--sign-key", str(KEYS / "erin"))
    assert approved.rc == 0, approved.stderr
    deployed = release(lab, "deploy", rid, "--env", "prod", "--as", "dave", "--json")
    assert deployed.rc == 0, deployed.stdout + deployed.stderr
    return rid


def test_the_whole_path_to_live_is_recorded_and_verifies(lab, story):
    check = release(lab, "verify-ledger", "--json")
    assert check.rc == 0 and check.json["ok"], check.stdout
    shown = release(lab, "show", story, "--json")
    assert shown.rc == 0, shown.stderr
    record = shown.json
    assert record["author"] == "alice" and record["approvers"] == ["erin"]
    assert [(d["env"], d["result"], d["identity"]) for d in record["deployments"]] == [
        ("dev", "ok", "deploy"), ("test", "ok", "deploy"), ("prod", "ok", "deploy"),
    ]  # fmt: skip
    assert any(v["env"] == "test" and v["result"] == "ok" for v in record["verifications"])
    prod = record["deployments"][-1]
    events = sorted((Path(prod["run"]) / "artifacts" / "job" / "job_events").glob("*.json"))
    assert events, "the prod deploy's job events are linked from its ledger entry"
    assert any(json.loads(e.read_text()).get("event") == "playbook_on_stats" for e in events)
    log = release(lab, "log")
    assert log.rc == 0 and "erin" in log.stdout and "(running)" in log.stdout
    # the prod host runs the release, installed by the deploy identity through its one sudo command
    marker = in_container(f"{lab.site.name}-prod-app1", "cat /srv/app/current/.provision-release")
    assert json.loads(marker.stdout)["digest"] == record["digest"]
    journal = in_container(f"{lab.site.name}-prod-app1", "journalctl -t provision-deploy --no-pager -o cat")
    assert f"release {story}" in journal.stdout and "installed by deploy" in journal.stdout
    after = verify(lab)
    assert after.rc == 0, json.dumps(after.json.get("failures"), indent=1)[:4000]
    for control in ("CHG-1", "CHG-2", "CHG-3", "CHG-4", "CUE-2"):
        counts = after.json["controls"][control]
        assert counts["pass"] > 0 and counts["fail"] == 0, (control, counts)


def test_production_hosts_refuse_a_developers_key_for_the_deploy_identity(lab, story):
    state = lab.state
    key = Path(shutil.copy(KEYS / "alice", state.root / "alice-key"))
    key.chmod(0o600)
    address = str(next(h.address for h in lab.site.model.hosts if h.name == "prod-app1"))
    for user in ("deploy", "alice"):
        attempt = subprocess.run(
            ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             f"{user}@{address}", "sudo -n /usr/local/sbin/provision-deploy r1 " + "0" * 64],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert attempt.returncode == 255 and "Permission denied (publickey)" in attempt.stderr, attempt.stderr
    key.unlink()
    before = Ledger(state).path.read_bytes()
    refused = release(lab, "deploy", story, "--env", "prod", "--key", str(KEYS / "alice"))
    assert refused.rc == 3 and "is alice's" in " ".join(refused.stderr.split()), refused.stderr
    backwards = release(lab, "deploy", story, "--env", "test")
    assert backwards.rc == 3 and "nothing moves backwards" in backwards.stderr
    assert Ledger(state).path.read_bytes() == before


def test_a_hand_edit_on_production_is_detected_and_a_redeploy_repairs_it(lab, story):
    page = "/srv/app/current/index.html"
    in_container(f"{lab.site.name}-prod-app1", f"echo '<p>hotfix typed into production</p>' >> {page}")
    drifted = verify(lab, "-k", "test_releases")
    assert drifted.rc == 1
    failures = drifted.json["failures"]
    assert {f["control"] for f in failures} == {"CHG-3"}, failures
    assert "changed by hand: index.html" in failures[0]["observed"]
    repaired = release(lab, "deploy", story, "--env", "prod", "--as", "dave")
    assert repaired.rc == 0, repaired.stderr
    again = verify(lab, "-k", "test_releases")
    assert again.rc == 0, again.json["failures"]


def test_a_ledger_rolled_back_to_an_older_signed_copy_fails_chg4_naming_the_hosts_that_saw_later(lab, story):
    ledger = Ledger(lab.state)
    current = (ledger.path.read_bytes(), ledger.head_path.read_bytes())
    try:
        ledger.path.write_bytes(OLDER["ledger"])
        ledger.head_path.write_bytes(OLDER["head"])
        alone = release(lab, "verify-ledger", "--json")
        assert alone.rc == 0 and alone.json["ok"], "the older copy verifies on its own: chained and signed"
        rolled = verify(lab, "-k", "ledger_is_chained")
        assert rolled.rc == 1
        (failure,) = [f for f in rolled.json["failures"] if f["control"] == "CHG-4"]
        assert "prod-app1 saw the ledger at entry" in failure["observed"], failure
        assert "rolled back" in failure["observed"]
        assert "dev-app1" not in failure["observed"], "dev saw only entries the older copy still holds"
    finally:
        ledger.path.write_bytes(current[0])
        ledger.head_path.write_bytes(current[1])
    assert verify(lab, "-k", "ledger_is_chained").rc == 0


@contextlib.contextmanager
def tunnel(lab, host: str):
    """The host's web page on a local port, through SSH as the automation account (the controller's key)."""
    state = lab.state
    address = str(next(h.address for h in lab.site.model.hosts if h.name == host))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["ssh", "-N", "-i", str(state.controller_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "StrictHostKeyChecking=yes",
         "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{port}:127.0.0.1:80", f"provision@{address}"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def chromium(url: str, screenshot: Path) -> str:
    """The page's DOM as headless Chromium rendered it; a screenshot is saved beside."""
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1024,600",
            f"--user-data-dir={screenshot.parent / 'chromium-profile'}"]  # fmt: skip
    shot = subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120)
    assert screenshot.is_file() and screenshot.stat().st_size > 1000, shot.stderr[-2000:]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "<body" in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium package is not installed")
def test_the_page_in_test_shows_the_banner_and_production_shows_none(lab, story, tmp_path):
    from html.parser import HTMLParser

    class Banner(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.banner: dict[str, str] | None = None
            self.body: dict[str, str] = {}

        def handle_starttag(self, tag, attrs):
            attributes = {k: v or "" for k, v in attrs}
            if attributes.get("id") == "provision-env-banner":
                self.banner = attributes
            if tag == "body":
                self.body = attributes

    seen = {}
    for host in ("test-app1", "prod-app1"):
        with tunnel(lab, host) as url:
            dom = chromium(url, tmp_path / f"{host}.png")
        parser = Banner()
        parser.feed(dom)
        seen[host] = parser
        assert parser.body.get("data-release") == story, f"{host} serves release {story}: {dom[:500]}"
    banner = seen["test-app1"].banner
    assert banner is not None and banner["data-environment"] == "test", "the test page carries the banner"
    assert "background:#" in banner["style"], banner
    assert seen["prod-app1"].banner is None, "production shows no environment banner"
    print(f"screenshots: {tmp_path}")


def test_an_emergency_fix_takes_the_same_path_and_its_approval_follows_production(lab, story, tmp_path):
    """releases.hotfix (24 h in the example): test and a passing verify there first, then production before the
    approval; CHG-2 holds while the deadline runs, and the approval signed afterwards is counted."""
    artifact = release_artifact(tmp_path, "1.0.1")
    created = release(lab, "create", "--artifact", str(artifact), "--as", "alice", "--hotfix",
                      "--sign-key", str(KEYS / "alice"), "--json")  # fmt: skip
    assert created.rc == 0 and created.json["hotfix"] is True, created.stderr
    fix = created.json["release"]
    early = release(lab, "deploy", fix, "--env", "prod", "--as", "dave")
    assert early.rc == 3 and "has not run in test" in early.stderr
    for env in ("dev", "test"):
        assert release(lab, "deploy", fix, "--env", env, "--as", "dave").rc == 0
    checked = verify(lab)
    assert checked.rc == 0, json.dumps(checked.json.get("failures"), indent=1)[:4000]
    deployed = release(lab, "deploy", fix, "--env", "prod", "--as", "dave")
    assert deployed.rc == 0, deployed.stdout + deployed.stderr
    pending = verify(lab, "-k", "approved_by_someone_else")
    assert pending.rc == 0, pending.json["failures"]
    assert release(lab, "approve", fix, "--as", "erin", "--sign-key", str(KEYS / "erin")).rc == 0
    shown = release(lab, "show", fix, "--json")
    assert shown.json["hotfix"] is True and shown.json["approvers"] == ["erin"]
    assert verify(lab, "-k", "approved_by_someone_else or ledger_is_chained").rc == 0
