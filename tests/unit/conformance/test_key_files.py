"""Private keys are checked before use: the people's keys under `verify --keys` (exit 2, naming the file and its
mode, nothing run) and the controller's keys in the site state (refused, naming the file and its mode)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import DEMO_KEYS, example_data, private_key_copies, short_temp_folder, write_site
from typer.testing import CliRunner

from provisioner.ansible_run.runner import ansible_env
from provisioner.cli import app
from provisioner.conformance.plugin import Lab
from provisioner.errors import ExitCode, ProvisionError
from provisioner.remote.ssh import Remote
from provisioner.site.load import load_site
from provisioner.workspace import signing
from provisioner.workspace.site_state import SiteState

NOBODY = 65534


@pytest.fixture
def short() -> Iterator[Path]:
    """Where the controller's state goes in these tests: short enough for its SSH socket folder."""
    with short_temp_folder() as folder:
        yield folder


@pytest.fixture
def site_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    data = copy.deepcopy(example_data())
    data["site"] = "keys"
    data["deploy"]["key_file"] = str(DEMO_KEYS / "deploy")
    return write_site(tmp_path / "inventories" / "keys", data)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return private_key_copies(DEMO_KEYS, tmp_path / "keys")


def verify(site_file: Path, keys: Path):
    env = {"PROVISION_STATE_DIR": os.environ["PROVISION_STATE_DIR"], "COLUMNS": "250"}
    return CliRunner(env=env).invoke(app, ["verify", str(site_file), "--keys", str(keys)], catch_exceptions=True)


def test_keys_only_their_owner_may_read_pass_the_check(site_file: Path, keys: Path):
    (keys / "bob").chmod(0o400)
    result = verify(site_file, keys)
    # past the key check, verify stops at the next thing it needs: a lab applied from here
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "site 'keys' has not been applied here yet" in result.stderr


def test_a_key_others_may_read_is_refused_naming_file_and_mode(site_file: Path, keys: Path, tmp_path: Path):
    (keys / "alice").chmod(0o644)
    (keys / "carol").chmod(0o640)
    (keys / "alice.pub").chmod(0o666)  # public halves are no one's secret: not checked
    result = verify(site_file, keys)
    assert result.exit_code == ExitCode.INVALID, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, Exception)
    stderr = result.stderr
    assert f"--keys {keys}: verify uses only private keys that are yours and mode 0600:" in stderr
    assert f"{keys / 'alice'}: mode 0644 lets group or others at this private key; it must be 0600" in stderr
    assert f"{keys / 'carol'}: mode 0640 lets group or others" in stderr
    assert "alice.pub" not in stderr and f"{keys / 'bob'}:" not in stderr
    assert not (tmp_path / "state" / "keys").exists(), "nothing run, no run folder"


def test_the_checkouts_own_demo_keys_are_refused_as_they_are(site_file: Path):
    """The repository's demo keys are 0644 after a checkout: --keys takes only private copies of them."""
    if os.stat(DEMO_KEYS / "alice").st_mode & 0o077 == 0:
        pytest.skip("this checkout's demo keys are private already")
    result = verify(site_file, DEMO_KEYS)
    assert result.exit_code == ExitCode.INVALID
    assert f"{DEMO_KEYS / 'alice'}: mode 06" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_a_key_of_another_owner_is_refused(site_file: Path, keys: Path):
    os.chown(keys / "dave", NOBODY, NOBODY)
    result = verify(site_file, keys)
    assert result.exit_code == ExitCode.INVALID, result.output
    assert f"{keys / 'dave'}: owned by uid {NOBODY}, not by uid 0 who runs provision" in result.stderr


def test_the_suite_uses_checked_keys_in_place_and_demo_keys_through_private_copies(site_file: Path, keys: Path):
    site = load_site(site_file)
    given = Lab(site, keys)
    assert given.key_of("alice") == keys / "alice", "no copy of a real person's key under /tmp"
    assert given.key_of("nobody") is None
    (keys / "bob").chmod(0o604)
    with pytest.raises(ValueError, match=f"refusing the private key {keys / 'bob'}: mode 0604"):
        given.key_of("bob")
    demo = Lab(site, DEMO_KEYS, demo_keys=True)
    copied = demo.key_of("alice")
    assert copied is not None and copied != DEMO_KEYS / "alice"
    assert copied.read_bytes() == (DEMO_KEYS / "alice").read_bytes() and copied.stat().st_mode & 0o777 == 0o600


# ---- the controller's keys ------------------------------------------------------------------------------------
def test_the_controller_key_is_made_private_and_accepted(short: Path):
    state = SiteState("ctl", short / "ctl")
    state.controller_public_key()
    assert state.controller_key.stat().st_mode & 0o777 == 0o600
    assert state.controller_identity() == state.controller_key
    assert ansible_env(state)["ANSIBLE_PRIVATE_KEY_FILE"] == str(state.controller_key)
    state.controller_key.chmod(0o400)
    assert state.controller_identity() == state.controller_key, "read-only for its owner is fine"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_controller_key_others_may_read_is_refused_wherever_it_is_used(short: Path, mode: int):
    state = SiteState("ctl", short / "ctl")
    state.controller_public_key()
    state.controller_key.chmod(mode)
    uses = [
        (ansible_env, "the controller's SSH key of site 'ctl'"),
        (lambda s: Remote(s).host("10.90.10.11"), "the controller's SSH key of site 'ctl'"),
        (SiteState.controller_public_key, "the private key of provisioner@ctl"),
    ]
    for use, what in uses:
        with pytest.raises(ProvisionError) as caught:
            use(state)
        assert str(caught.value) == (
            f"{state.controller_key}: {what}: mode {mode:04o} lets group or others at this private key; it must be "
            f"0600 (chmod 600 {state.controller_key}); refusing to use it"
        )
    assert state.controller_key.stat().st_mode & 0o777 == mode, "nothing changed"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_a_controller_key_of_another_owner_is_refused(short: Path):
    state = SiteState("ctl", short / "ctl")
    state.controller_public_key()
    os.chown(state.controller_key, NOBODY, NOBODY)
    with pytest.raises(ProvisionError, match=f"owned by uid {NOBODY}, not by uid 0 who runs provision"):
        ansible_env(state)


def test_the_evidence_signing_key_is_checked_before_it_signs(short: Path):
    state = SiteState("sig", short / "sig")
    signing.sign(state, b"data", "provision-ledger")
    key = state.signing_dir / signing.KEY_NAME
    key.chmod(0o644)
    with pytest.raises(ProvisionError) as caught:
        signing.sign(state, b"data", "provision-ledger")
    assert str(caught.value).startswith(f"{key}: the private key of evidence@sig: mode 0644 lets group or others")
