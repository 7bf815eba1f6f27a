"""app (CUE-2, CHG-3) on the scenario's lab: the page is served through nginx with the environment banner
outside production and none in production; the deploy command installs only an artifact whose digest matches."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile

import pytest

testinfra_hosts = ["dev-app1", "prod-app1"]


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


def _artifact(version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in (("VERSION", f"{version}\n"), ("index.html", f"<p>molecule {version}</p>\n")):
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("tampered", [False, True])
def test_deploy_command_installs_only_the_digest_it_is_given(host, tampered):
    data = _artifact("9.9.9")
    digest = hashlib.sha256(data).hexdigest()
    shipped = data + b"x" if tampered else data
    encoded = base64.b64encode(shipped).decode()
    host.run_expect(
        [0], f"mkdir -p /home/deploy/incoming && echo {encoded} | base64 -d > /home/deploy/incoming/{digest}.tar.gz"
    )
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
