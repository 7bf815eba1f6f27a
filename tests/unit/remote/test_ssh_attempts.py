"""Remote.attempt_ssh, with a stand-in `ssh` on PATH that answers as OpenSSH 9.2's client does: a connection sshd
dropped before the identification exchange (beyond its MaxStartups) is no answer and is attempted again; a refusal
or a login is final at once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provisioner.remote import ssh as ssh_module
from provisioner.remote.ssh import Remote, dropped_before_identification
from provisioner.workspace.site_state import SiteState

DROPPED = "kex_exchange_identification: Connection closed by remote host\r\nConnection closed by 10.90.30.21 port 22\n"
REFUSED = "alice@10.90.30.21: Permission denied (publickey).\n"


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`ssh` answers with the lines of `answers` in turn (a `drop` or a `refuse`), counting its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answers, calls = tmp_path / "answers", tmp_path / "calls"
    script = bin_dir / "ssh"
    script.write_text(
        "#!/bin/sh\n"
        f'echo call >> "{calls}"\n'
        f'answer=$(head -n 1 "{answers}"); sed -i 1d "{answers}"\n'
        f"if [ \"$answer\" = drop ]; then printf '{DROPPED}' >&2; exit 255; fi\n"
        f"if [ \"$answer\" = refuse ]; then printf '{REFUSED}' >&2; exit 255; fi\n"
        "echo alice; exit 0\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(ssh_module, "DROPPED_RETRY_PAUSES", (0.01, 0.01, 0.01))

    def run(*sequence: str):
        answers.write_text("".join(f"{a}\n" for a in sequence))
        calls.unlink(missing_ok=True)
        remote = Remote(SiteState("example", tmp_path / "state"))
        attempt = remote.attempt_ssh(tmp_path / "key", "alice", "10.90.30.21")
        return attempt, len(calls.read_text().splitlines())

    return run


def test_a_dropped_connection_is_attempted_again_until_sshd_answers(fake_ssh):
    attempt, calls = fake_ssh("drop", "drop", "refuse")
    assert calls == 3
    assert attempt.rc == 255 and "Permission denied" in attempt.stderr


def test_a_refusal_is_final_at_once(fake_ssh):
    attempt, calls = fake_ssh("refuse", "ok")
    assert calls == 1 and "Permission denied" in attempt.stderr


def test_a_login_is_final_at_once(fake_ssh):
    attempt, calls = fake_ssh("ok", "refuse")
    assert calls == 1 and attempt.ok and attempt.stdout.strip() == "alice"


def test_a_host_that_keeps_dropping_gives_the_drop_after_a_few_attempts(fake_ssh):
    attempt, calls = fake_ssh(*["drop"] * 10)
    assert calls == len(ssh_module.DROPPED_RETRY_PAUSES) + 1
    assert attempt.rc == 255 and "kex_exchange_identification" in attempt.stderr and not attempt.ok


def test_only_a_drop_before_identification_counts_as_no_answer():
    assert dropped_before_identification(255, DROPPED)
    assert dropped_before_identification(255, "kex_exchange_identification: read: Connection reset by peer\n")
    assert not dropped_before_identification(255, REFUSED)
    assert not dropped_before_identification(255, "ssh: connect to host 10.90.30.21 port 22: No route to host\n")
    assert not dropped_before_identification(0, DROPPED), "a login that printed the words is a login"


@pytest.fixture
def recorded_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`ssh` that refuses and records its arguments; returns what the real OpenSSH client (`ssh -G`) makes of
    them: the key exchange algorithms it would offer, in order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorded = tmp_path / "arguments"
    script = bin_dir / "ssh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > \"{recorded}\"\nprintf '{REFUSED}' >&2; exit 255\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def offered(stdin: str | None) -> list[str]:
        remote = Remote(SiteState("example", tmp_path / "state"))
        remote.attempt_ssh(tmp_path / "key", "alice", "10.90.30.21", stdin=stdin)
        arguments = recorded.read_bytes().split(b"\0")[:-1]
        return _client_kex([a.decode() for a in arguments[: arguments.index(b"--")]])

    return offered


def _client_kex(options: list[str]) -> list[str]:
    """The key exchange algorithms the real OpenSSH client offers with these options, in order (`ssh -G`)."""
    config = subprocess.run(["/usr/bin/ssh", "-G", *options, "alice@10.90.30.21"], capture_output=True, text=True)
    assert config.returncode == 0, config.stderr
    return next(x for x in config.stdout.splitlines() if x.startswith("kexalgorithms ")).split()[1].split(",")


def _client_default() -> list[str]:
    return _client_kex([])


def test_an_attempt_with_nothing_on_stdin_offers_curve25519_first_and_the_default_list_after(recorded_arguments):
    default = _client_default()
    assert default[0].startswith("sntrup761x25519"), "OpenSSH 9's own order puts the post-quantum hybrid first"
    offered = recorded_arguments(None)
    assert offered[:2] == ["curve25519-sha256", "curve25519-sha256@libssh.org"]
    assert sorted(offered) == sorted(default), "every algorithm of the default list is still offered, after them"


def test_an_attempt_that_sends_a_secret_keeps_the_default_key_exchange(recorded_arguments):
    assert recorded_arguments("a password\n") == _client_default()
