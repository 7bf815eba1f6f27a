"""Remote.attempt_ssh, with a stand-in `ssh` on PATH that answers as OpenSSH 9.2's client does: a connection sshd
dropped before the identification exchange (beyond its MaxStartups) is no answer and is attempted again; a refusal
or a login is final at once."""

from __future__ import annotations

import os
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
