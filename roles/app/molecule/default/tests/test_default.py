"""app (CUE-2, CHG-3) on the scenario's lab: the page is served through nginx with the environment banner
outside production and none in production; the deploy command installs only an artifact whose digest matches,
and the deploy identity reaches it through sudo only with the one argument form it accepts (issue 18)."""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import tarfile
import time

import pytest

testinfra_hosts = ["dev-app1", "prod-app1"]
DEPLOY = "/usr/local/sbin/provision-deploy"
INCOMING = "/home/deploy/incoming"


def journal_line(host, wanted: str, seconds: float = 10) -> str:
    """The deploy command's journal entries, read again until `wanted` is among them or `seconds` have passed:
    journald stores what the command sends to syslog a moment later; one read straight after it can miss it."""
    deadline = time.monotonic() + seconds
    while True:
        journal = host.run("journalctl -t provision-deploy --no-pager -o cat").stdout
        if wanted in journal or time.monotonic() > deadline:
            return journal
        time.sleep(0.25)


def page(host) -> str:
    return host.check_output("curl -fsS --max-time 5 http://127.0.0.1/")


def test_page_shows_the_banner_only_outside_production(host):
    text = page(host)
    production = host.backend.get_hostname() == "prod-app1"
    assert ('id="provision-env-banner"' in text) is not production, text[:400]
    if not production:
        assert 'data-environment="dev"' in text and "DEV environment" in text
    assert "no database configured" in text


def test_application_server_listens_on_loopback_only_as_its_own_user(host):
    listening = host.socket("tcp://127.0.0.1:8080")
    assert listening.is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening
    process = host.process.get(comm="python3", user="provision-app")
    assert "server.py" in " ".join(process.args.split())
    config = host.file("/etc/provision-app/database.json")
    assert config.mode == 0o640 and config.user == "root" and config.group == "provision-app"


def _artifact(version: str, extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in (("VERSION", f"{version}\n"), ("index.html", f"<p>molecule {version}</p>\n")):
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return buffer.getvalue()


@pytest.mark.parametrize("tampered", [False, True])
def test_deploy_command_installs_only_the_digest_it_is_given(host, tampered):
    data = _artifact("9.9.9")
    digest = hashlib.sha256(data).hexdigest()
    shipped = data + b"x" if tampered else data
    encoded = base64.b64encode(shipped).decode()
    host.run_expect([0], f"install -d -o deploy -g deploy -m 0700 {INCOMING}")  # the accounts role made the user
    host.run_expect([0], f"echo {encoded} | base64 -d > {INCOMING}/{digest}.tar.gz")
    before = host.run("readlink /srv/app/current").stdout.strip()
    result = host.run(f"/usr/local/sbin/provision-deploy r7 {digest} 7:{'a' * 64}")
    after = host.run("readlink /srv/app/current").stdout.strip()
    if tampered:
        assert result.rc == 3 and "not installing" in result.stderr
        assert after == before
    else:
        assert result.rc == 0, result.stderr
        assert after == "releases/r7"
        assert 'data-release="r7"' in page(host) and "molecule 9.9.9" in page(host)


def test_deploy_command_keeps_the_ledger_head_and_never_moves_it_back(host):
    """CHG-4's anchor: the head the controller's ledger had at the last deploy, root-owned, read-only to others."""
    anchor = host.file("/var/lib/provision-deploy/ledger-head")
    assert anchor.exists and anchor.user == "root" and anchor.mode == 0o644
    assert anchor.content_string == f"7 {'a' * 64}\n"
    data = _artifact("9.9.8")
    digest = hashlib.sha256(data).hexdigest()
    encoded = base64.b64encode(data).decode()
    host.run_expect([0], f"echo {encoded} | base64 -d > /home/deploy/incoming/{digest}.tar.gz")
    host.run_expect([0], f"/usr/local/sbin/provision-deploy r6 {digest} 3:{'b' * 64}")
    assert host.file("/var/lib/provision-deploy/ledger-head").content_string == f"7 {'a' * 64}\n", "never back"


def test_deploy_command_rejects_arguments_it_does_not_expect(host):
    head = "1:" + "0" * 64
    for args in ("", "r1", "../r1 " + "0" * 64 + " " + head, "r1 " + "0" * 63 + " " + head,
                 "'r1;id' " + "0" * 64 + " " + head, "r1 " + "0" * 64, "r1 " + "0" * 64 + " 0:" + "0" * 64,
                 "r1 " + "0" * 64 + " '1:" + "0" * 64 + "\n2'", "r1 " + "0" * 64 + " 1:" + "0" * 63):  # fmt: skip
        result = host.run(f"/usr/local/sbin/provision-deploy {args}")
        assert result.rc == 2 and "usage" in result.stderr, args


# ---- through real sudo, as the deploy identity (issue 18: a deploy command that cannot be steered) --------------
def _ship_as_deploy(host, data: bytes) -> str:
    """Ship an artifact into the deploy identity's incoming folder as that identity, as playbooks/deploy.yml does."""
    digest = hashlib.sha256(data).hexdigest()
    encoded = base64.b64encode(data).decode()
    shipped = f"{INCOMING}/{digest}.tar.gz"
    host.run_expect([0], f"install -d -o deploy -g deploy -m 0700 {INCOMING}")  # as playbooks/deploy.yml makes it
    host.run_expect([0], f"runuser -u deploy -- sh -c 'mkdir -p {INCOMING} && echo {encoded} | base64 -d > {shipped}'")
    return digest


def _as_deploy(host, *args: str):
    return host.run(f"runuser -u deploy -- sudo -n {DEPLOY} {' '.join(shlex.quote(a) for a in args)}")


def _sudo_allows(host, *args: str) -> bool:
    """sudo's own verdict on the deploy identity running DEPLOY with these arguments (sudo -l -U, as root)."""
    return host.run(f"sudo -l -U deploy {DEPLOY} {' '.join(shlex.quote(a) for a in args)}").rc == 0


def _state(host) -> tuple[str, str, str]:
    """What a refused attempt must leave as it was: the current link, the releases, the sudo rules."""
    return (
        host.run("readlink /srv/app/current").stdout,
        host.run("ls -la /srv/app/releases").stdout,
        host.run("ls -la /etc/sudoers.d; sha256sum /etc/sudoers.d/*").stdout,
    )


def test_the_deploy_identity_deploys_through_sudo_with_the_legitimate_form(host):
    data = _artifact("9.9.7")
    digest = _ship_as_deploy(host, data)
    head = "7:" + "a" * 64  # the anchor already holds 7: it stays as it is
    assert _sudo_allows(host, "r8", digest, head)
    result = _as_deploy(host, "r8", digest, head)
    assert result.rc == 0 and f"installed r8 sha256:{digest}" in result.stdout, result.stderr
    assert host.run("readlink /srv/app/current").stdout.strip() == "releases/r8"
    assert 'data-release="r8"' in page(host)
    journal = journal_line(host, f"release r8 sha256:{digest} installed by deploy")
    assert f"release r8 sha256:{digest} installed by deploy" in journal


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["r1\n../../../../etc/sudoers.d", "0" * 64, "1:" + "0" * 64], "newline and ../ tail in the id"),
        (["r1/../../x", "0" * 64, "1:" + "0" * 64], "path in the id"),
        (["r1", "0" * 64, "1:" + "0" * 64, "extra"], "an extra argument"),
        (["r1", "0" * 64], "a missing argument"),
        (["r1", "0" * 64, "1:" + "0" * 64 + "\n"], "a trailing newline"),
        (["r1", "0" * 64, "1:" + "0" * 64, ""], "a trailing empty argument"),
        ([], "no arguments"),
    ],
)
def test_sudo_itself_refuses_any_other_argument_form(host, args, why):
    assert _sudo_allows(host, "r1", "0" * 64, "1:" + "0" * 64), "control: the legitimate form is allowed"
    assert not _sudo_allows(host, *args), why
    before = _state(host)
    result = _as_deploy(host, *args)
    assert result.rc == 1, (why, result.rc, result.stderr)
    assert "a password is required" in result.stderr or "not allowed" in result.stderr, result.stderr
    assert "usage:" not in result.stderr, "refused by sudo, before the deploy command ran"
    assert _state(host) == before


def test_arguments_sudo_joins_into_the_legitimate_form_are_refused_by_the_command(host):
    """sudo matches the arguments joined with spaces: two arguments holding the three are allowed by sudo and
    refused by the deploy command, which checks each argument as a whole."""
    args = ("r1 " + "0" * 64, "1:" + "0" * 64)
    assert _sudo_allows(host, *args)
    before = _state(host)
    result = _as_deploy(host, *args)
    assert result.rc == 2 and "usage: provision-deploy" in result.stderr and "exactly three" in result.stderr
    assert _state(host) == before


def test_a_symlink_smuggled_in_the_artifact_writes_nothing_through_it(host):
    link = tarfile.TarInfo("etc")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    payload = tarfile.TarInfo("etc/sudoers.d/pv-smuggled")
    payload.size = 24
    data = _artifact("6.6.6", (link, payload))
    digest = _ship_as_deploy(host, data)
    before = _state(host)
    result = _as_deploy(host, "r9", digest, "7:" + "a" * 64)
    assert result.rc == 4, result.stderr
    assert "member etc is a symbolic link (to /etc): not installing" in result.stderr
    assert not host.file("/etc/sudoers.d/pv-smuggled").exists
    assert not host.file("/srv/app/releases/r9").exists
    assert _state(host) == before


def test_a_shipped_file_that_links_to_a_root_only_file_is_not_read(host):
    digest = host.check_output("sha256sum /etc/shadow").split()[0]
    host.run_expect([0], f"runuser -u deploy -- ln -sfn /etc/shadow {INCOMING}/{digest}.tar.gz")
    before = _state(host)
    result = _as_deploy(host, "r9", digest, "7:" + "a" * 64)
    assert result.rc == 4 and f"{INCOMING}/{digest}.tar.gz is a symbolic link: not reading it" in result.stderr
    assert _state(host) == before
    host.run_expect([0], f"rm -f {INCOMING}/{digest}.tar.gz")
