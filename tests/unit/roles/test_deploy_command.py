"""The deploy command (roles/app/templates/usr/local/sbin/provision-deploy.j2) rendered with the role's defaults
for an app root, incoming folder and ledger anchor under tmp_path, and RUN against every attack of issue 18:
each is refused for the right reason (exit code and the whole message), nothing anywhere under tmp_path changes
(the decoy folder `outside` included) and the installed release stays as it was. `release create` refuses the
same artifacts (provisioner/releases/artifacts.py keeps the same rules)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import stat
import subprocess
import tarfile
import types
from pathlib import Path

import jinja2
import pytest
import yaml
from helpers import ROOT

from provisioner.errors import ExitCode, InputError, shown
from provisioner.releases import artifacts

ROLE = ROOT / "roles" / "app"
TEMPLATE = ROLE / "templates" / "usr" / "local" / "sbin" / "provision-deploy.j2"
USAGE = "usage: provision-deploy RELEASE_ID SHA256 COUNT:HASH"
ALLOWED = "a release holds only regular files and folders with relative names"
HEAD = "1:" + "a" * 64

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the deploy command runs as root (chown root:root)")
needs_python = pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="the command runs /usr/bin/python3")


def render(**overrides: str) -> str:
    """The template as Ansible renders it: the role's defaults (templated among themselves), then overrides."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["to_json"] = json.dumps
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {k: environment.from_string(v).render(values) if isinstance(v, str) else v for k, v in values.items()}
    values.update(ansible_managed="Ansible managed (unit test)", **overrides)
    return environment.from_string(TEMPLATE.read_text()).render(values)


# ---- artifacts ------------------------------------------------------------------------------------------------
def regular(name: str, data: bytes = b"x\n", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, b""


def tarball(*extra: tuple[tarfile.TarInfo, bytes], version: str = "1.0.0") -> bytes:
    members = [regular("VERSION", f"{version}\n".encode()), regular("index.html", f"<p>{version}</p>\n".encode())]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in [*members, *extra]:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Host:
    """A host's folders under tmp_path, the rendered command among them, and a decoy folder `outside`."""

    def __init__(self, base: Path):
        self.base = base
        self.app = base / "srv" / "app"
        self.incoming = base / "home" / "deploy" / "incoming"
        self.anchor = base / "var" / "lib" / "provision-deploy" / "ledger-head"
        self.outside = base / "outside"
        self.command = base / "usr" / "local" / "sbin" / "provision-deploy"
        (self.app / "releases").mkdir(parents=True)
        self.incoming.mkdir(parents=True)
        self.outside.mkdir()
        (self.outside / "keep.txt").write_text("outside the app root\n")
        self.command.parent.mkdir(parents=True)
        self.command.write_text(
            render(app_root=str(self.app), app_deploy_incoming=str(self.incoming), app_ledger_anchor=str(self.anchor))
        )
        self.command.chmod(0o755)

    def ship(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or sha(data)
        (self.incoming / f"{digest}.tar.gz").write_bytes(data)
        return digest

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SUDO_USER": "deploy", "LANG": "C"}
        return subprocess.run([str(self.command), *args], capture_output=True, text=True, env=env, timeout=120)

    def deploy(self, data: bytes, release: str, head: str = HEAD) -> str:
        digest = self.ship(data)
        result = self.run(release, digest, head)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"installed {release} sha256:{digest}\n" and result.stderr == ""
        return digest

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        """Everything under tmp_path: kind, mode, owner, and content or link target."""
        seen: dict[str, tuple[object, ...]] = {}
        for folder, dirs, files in os.walk(self.base):
            for name in dirs + files:
                path = Path(folder, name)
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode):
                    what: object = os.readlink(path)
                elif stat.S_ISREG(info.st_mode):
                    what = sha(path.read_bytes())
                else:
                    what = None
                seen[str(path.relative_to(self.base))] = (stat.S_IFMT(info.st_mode), info.st_mode, info.st_uid, what)
        return seen

    def current(self) -> str:
        return os.readlink(self.app / "current")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
def installed(host: Host) -> Host:
    """A host already running r1 (so a refused deploy has a release to leave alone)."""
    host.deploy(tarball(version="1.0.0"), "r1")
    return host


# ---- the rendered command --------------------------------------------------------------------------------------
def test_rendered_with_the_roles_defaults_it_names_the_hosts_paths():
    text = render()
    assert text.startswith("#!/usr/bin/python3 -I\n")
    assert 'APP_ROOT = "/srv/app"\n' in text
    assert 'INCOMING = "/home/deploy/incoming"\n' in text
    assert 'ANCHOR = "/var/lib/provision-deploy/ledger-head"\n' in text
    compile(text, "provision-deploy", "exec")
    assert "filter=" not in text, "Debian 12's Python 3.11.2 tarfile has no extraction filter"


def test_the_roles_validate_command_accepts_the_rendered_command_and_refuses_a_broken_one(tmp_path):
    """The template task's `validate:` runs on the host before the command is replaced."""
    tasks = yaml.safe_load((ROLE / "tasks" / "deploy_command.yml").read_text())
    validate = tasks[0]["ansible.builtin.template"]["validate"]
    good, broken = tmp_path / "good", tmp_path / "broken"
    good.write_text(render())
    broken.write_text(render().replace("def main():", "def main(:"))
    assert subprocess.run(shlex.split(validate.replace("%s", str(good))), capture_output=True).returncode == 0
    refused = subprocess.run(shlex.split(validate.replace("%s", str(broken))), capture_output=True, text=True)
    assert refused.returncode == 1 and "SyntaxError" in refused.stderr


# ---- what it installs ------------------------------------------------------------------------------------------
@needs_python
@as_root
def test_a_release_is_installed_root_owned_without_special_bits_with_its_marker_and_the_ledger_head(host):
    data = tarball(
        regular("bin/run", b"#!/bin/sh\n", mode=0o6755),
        regular("private.txt", b"secret\n", mode=0o600),
        special("empty", tarfile.DIRTYPE),
    )
    digest = host.deploy(data, "r1", "3:" + "c" * 64)
    tree = host.app / "releases" / "r1"
    assert host.current() == "releases/r1"
    assert json.loads((tree / ".provision-release").read_text()) == {"release": "r1", "digest": f"sha256:{digest}"}
    modes = {p.relative_to(tree).as_posix(): (stat.S_IMODE(p.lstat().st_mode), p.lstat().st_uid)
             for p in tree.rglob("*")}  # fmt: skip
    assert modes == {
        "VERSION": (0o644, 0),
        "index.html": (0o644, 0),
        "bin": (0o755, 0),
        "bin/run": (0o755, 0),
        "private.txt": (0o644, 0),
        "empty": (0o755, 0),
        ".provision-release": (0o644, 0),
    }
    assert stat.S_IMODE(tree.stat().st_mode) == 0o755
    assert host.anchor.read_text() == "3 " + "c" * 64 + "\n" and stat.S_IMODE(host.anchor.stat().st_mode) == 0o644
    assert not list(host.app.glob(".deploy.*")) and not list(host.app.glob(".current.*")), "no leftovers"


@needs_python
@as_root
def test_a_redeploy_replaces_a_hand_edited_copy_and_the_anchor_never_moves_back(installed):
    host = installed
    (host.app / "releases" / "r1" / "index.html").write_text("hotfix typed into production\n")
    host.deploy(tarball(version="1.0.0"), "r1", "5:" + "b" * 64)
    assert (host.app / "releases" / "r1" / "index.html").read_text() == "<p>1.0.0</p>\n"
    host.deploy(tarball(version="2.0.0"), "r2", "4:" + "d" * 64)
    assert host.current() == "releases/r2"
    assert host.anchor.read_text() == "5 " + "b" * 64 + "\n", "an older head never replaces a later one"


@needs_python
@as_root
def test_the_shipped_file_is_read_once_so_a_swap_after_the_check_installs_nothing_else(installed, monkeypatch):
    """The check and the unpacking work on the same bytes: the shipped file swapped right after the command read
    it (the deploy identity owns it) changes nothing, as the command never opens it again."""
    host = installed
    module = types.ModuleType("provision_deploy")  # not __main__: its main() does not run
    exec(compile(host.command.read_text(), str(host.command), "exec"), module.__dict__)
    good = tarball(version="2.0.0")
    digest = host.ship(good)
    read = module.read_shipped
    reads = []

    def read_then_swap(name: str) -> bytes:
        reads.append(name)
        data = read(name)
        host.ship(tarball(version="6.6.6"), digest)
        return data

    monkeypatch.setattr(module, "read_shipped", read_then_swap)
    module.deploy(["r2", digest, "2:" + "a" * 64])
    assert reads == [digest]
    assert (host.app / "releases" / "r2" / "VERSION").read_text() == "2.0.0\n"
    assert (host.incoming / f"{digest}.tar.gz").read_bytes() != good, "the swap did happen"


# ---- refused arguments (exit 2) ------------------------------------------------------------------------------
DIGEST = sha(tarball(version="2.0.0"))
RELEASE_WHY = "release ids look like r12, got "
DIGEST_WHY = "SHA256 is 64 lowercase hex characters, got "
HEAD_WHY = "COUNT:HASH is 1 to 9 digits (COUNT > 0, no leading zero), ':' and 64 hex characters, got "
ARGUMENTS = [
    ("newline-and-dotdot-tail", ["r1\n../../../../outside/sudoers.d", DIGEST, HEAD], RELEASE_WHY),
    ("path-in-the-id", ["r1/../../x", DIGEST, HEAD], RELEASE_WHY),
    ("leading-newline", ["\nr1", DIGEST, HEAD], RELEASE_WHY),
    ("r0", ["r0", DIGEST, HEAD], RELEASE_WHY),
    ("leading-zero", ["r01", DIGEST, HEAD], RELEASE_WHY),
    ("ten-digits", ["r1234567890", DIGEST, HEAD], RELEASE_WHY),
    ("unicode-digit", ["r\u0661", DIGEST, HEAD], RELEASE_WHY),
    ("digest-newline", ["r1", DIGEST + "\n", HEAD], DIGEST_WHY),
    ("digest-uppercase", ["r1", DIGEST.upper(), HEAD], DIGEST_WHY),
    ("digest-path", ["r1", "../" + DIGEST[3:], HEAD], DIGEST_WHY),
    ("head-trailing-newline", ["r1", DIGEST, HEAD + "\n"], HEAD_WHY),
    ("head-two-lines", ["r1", DIGEST, HEAD + "\n2:" + "a" * 64], HEAD_WHY),
    ("head-zero", ["r1", DIGEST, "0:" + "a" * 64], HEAD_WHY),
    ("head-leading-zero", ["r1", DIGEST, "01:" + "a" * 64], HEAD_WHY),
    ("head-short-hash", ["r1", DIGEST, "1:" + "a" * 63], HEAD_WHY),
    ("head-extra-field", ["r1", DIGEST, HEAD + ":x"], HEAD_WHY),
]
COUNTS = [
    ("extra-argument", ["r1", DIGEST, HEAD, "extra"], "exactly three arguments, got 4"),
    ("missing-argument", ["r1", DIGEST], "exactly three arguments, got 2"),
    ("no-arguments", [], "exactly three arguments, got 0"),
    ("sudo-joined-form", ["r1 " + DIGEST, HEAD], "exactly three arguments, got 2"),
]


@needs_python
@as_root
@pytest.mark.parametrize(("args", "why"), [(a, w) for _, a, w in ARGUMENTS], ids=[n for n, _, _ in ARGUMENTS])
def test_an_argument_not_of_the_strict_form_is_refused_as_a_whole(installed, args, why):
    host = installed
    host.ship(tarball(version="2.0.0"))
    before = host.snapshot()
    result = host.run(*args)
    bad = args[[RELEASE_WHY, DIGEST_WHY, HEAD_WHY].index(why)]
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"{USAGE} ({why}{shown_by_command(bad)})\n"
    assert result.stdout == "" and host.snapshot() == before


@needs_python
@as_root
@pytest.mark.parametrize(("args", "why"), [(a, w) for _, a, w in COUNTS], ids=[n for n, _, _ in COUNTS])
def test_extra_or_missing_arguments_are_refused(installed, args, why):
    host = installed
    host.ship(tarball(version="2.0.0"))
    before = host.snapshot()
    result = host.run(*args)
    assert result.returncode == 2 and result.stderr == f"{USAGE} ({why})\n"
    assert host.snapshot() == before


def shown_by_command(value: str) -> str:
    """How the deploy command shows a refused value: as is when plain printable ASCII, else ascii() of it (escapes,
    never a line break), cut at 120 characters."""
    plain = value and all(0x21 <= ord(c) <= 0x7E and c not in "'\"\\" for c in value)
    text = value if plain else ascii(value)
    return text if len(text) <= 120 else text[:120] + "..."


# ---- refused artifacts (exit 4), also refused by `release create` (exit 2) --------------------------------------
def members(outside: Path) -> list[tuple[str, list[tuple[tarfile.TarInfo, bytes]], str, str]]:
    """(id, extra members, refused member's name, why) of every artifact both sides refuse."""
    far = str(outside / "written-through.txt")
    return [
        ("symlink", [special("evil", tarfile.SYMTYPE, str(outside))], "evil", f"is a symbolic link (to {outside})"),
        ("symlink-parent", [special("web", tarfile.SYMTYPE, str(outside)), regular("web/page.html")], "web",
         f"is a symbolic link (to {outside})"),
        ("hard-link", [special("evil", tarfile.LNKTYPE, str(outside / "keep.txt"))], "evil",
         f"is a hard link (to {outside / 'keep.txt'})"),
        ("char-device", [special("null", tarfile.CHRTYPE)], "null", "is a device node"),
        ("block-device", [special("disk", tarfile.BLKTYPE)], "disk", "is a device node"),
        ("fifo", [special("pipe", tarfile.FIFOTYPE)], "pipe", "is a FIFO"),
        ("absolute", [regular(far)], far, "has an absolute name"),
        ("dotdot", [regular("../../../../outside/written-through.txt")], "../../../../outside/written-through.txt",
         "has a '..' component"),
        ("inner-dotdot", [regular("a/../../x")], "a/../../x", "has a '..' component"),
        ("newline-name", [regular("evil\nname")], "evil\nname", "has a control character in its name"),
        ("escape-name", [regular("\x1b[31mred")], "\x1b[31mred", "has a control character in its name"),
        ("twice", [regular("VERSION", b"9.9.9\n")], "VERSION", "appears twice"),
        ("below-a-file", [regular("index.html/x")], "index.html/x", "is below index.html, which is a file"),
        ("marker", [regular(".provision-release", b'{"release": "r9"}\n')], ".provision-release",
         "uses the name .provision-release"),
    ]  # fmt: skip


KINDS = [m[0] for m in members(Path("/x"))]


@needs_python
@as_root
@pytest.mark.parametrize("kind", KINDS)
def test_an_artifact_with_a_forbidden_member_is_refused_by_the_command_and_by_release_create(installed, kind):
    host = installed
    _, extra, name, why = next(m for m in members(host.outside) if m[0] == kind)
    data = tarball(*extra, version="2.0.0")
    digest = host.ship(data)
    before = host.snapshot()
    result = host.run("r2", digest, "2:" + "b" * 64)
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith(f"the artifact's member {shown_by_command(name)} {why}"), result.stderr
    assert result.stderr.endswith(f": not installing ({ALLOWED})\n"), result.stderr
    assert host.snapshot() == before, "nothing written, r1 still installed and current"
    assert host.current() == "releases/r1"
    artifact = host.base / "artifact.tar.gz"
    artifact.write_bytes(data)
    with pytest.raises(InputError) as refused:
        artifacts.inspect(artifact)
    assert refused.value.exit_code == ExitCode.INVALID
    assert str(refused.value).startswith(f"--artifact {artifact}: member {shown(name)} {why}"), refused.value


@needs_python
@as_root
def test_too_many_members_or_bytes_are_refused(installed):
    host = installed
    crowd = tarball(*[special(f"d{i}", tarfile.DIRTYPE) for i in range(10_000)])
    result = host.run("r2", host.ship(crowd), HEAD)
    assert result.returncode == 4 and result.stderr == "the artifact has more than 10000 members: not installing\n"
    huge = tarfile.TarInfo("huge")
    huge.size = 2**31  # the header alone: refused before any content is read
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(huge)
    digest = host.ship(buffer.getvalue())
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 4
    assert result.stderr == "the artifact unpacks to more than 1073741824 bytes: not installing\n"
    assert host.snapshot() == before


@needs_python
@as_root
def test_a_file_that_is_not_a_tarball_is_refused(installed):
    host = installed
    digest = host.ship(b"#!/bin/sh\nrm -rf /\n")
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 4 and result.stderr.startswith("the artifact is not a .tar.gz archive (")
    assert host.snapshot() == before


# ---- the shipped file ------------------------------------------------------------------------------------------
@needs_python
@as_root
def test_a_digest_mismatch_is_refused(installed):
    host = installed
    digest = sha(tarball(version="2.0.0"))
    tampered = tarball(version="6.6.6")
    host.ship(tampered, digest)
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 3
    assert result.stderr == f"the artifact's digest is {sha(tampered)}, not {digest}: not installing\n"
    assert host.snapshot() == before


@needs_python
@as_root
def test_a_shipped_file_that_is_a_link_a_fifo_or_missing_is_not_read(installed):
    host = installed
    data = tarball(version="2.0.0")
    digest = sha(data)
    shipped = host.incoming / f"{digest}.tar.gz"
    (host.outside / "root-only.tar.gz").write_bytes(data)  # the digest matches: only the link is wrong
    shipped.symlink_to(host.outside / "root-only.tar.gz")
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 4 and result.stderr == f"{shipped} is a symbolic link: not reading it\n"
    assert host.snapshot() == before
    shipped.unlink()
    os.mkfifo(shipped)
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 4 and result.stderr == f"{shipped} is not a regular file: not reading it\n"
    shipped.unlink()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 1
    assert result.stderr == f"cannot read {shipped}: no such file (ship the artifact first)\n"


@needs_python
@as_root
def test_an_incoming_folder_that_is_a_link_is_not_read_from(installed):
    host = installed
    data = tarball(version="2.0.0")
    (host.outside / f"{sha(data)}.tar.gz").write_bytes(data)
    shutil.rmtree(host.incoming)
    host.incoming.symlink_to(host.outside)
    before = host.snapshot()
    result = host.run("r2", sha(data), HEAD)
    assert result.returncode == 4
    assert result.stderr == f"{host.incoming} is not a folder (a link?): not reading from it\n"
    assert host.snapshot() == before


# ---- the install place (exit 5) -------------------------------------------------------------------------------
@needs_python
@as_root
def test_a_link_at_the_releases_place_is_refused_not_followed(installed):
    host = installed
    (host.app / "releases" / "r2").symlink_to(host.outside)
    digest = host.ship(tarball(version="2.0.0"))
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 5
    assert result.stderr == (
        f"{host.app}/releases/r2 is a link, not a release folder: not installing (remove it by hand)\n"
    )
    assert host.snapshot() == before


@needs_python
@as_root
def test_a_releases_folder_or_app_root_that_is_a_link_is_refused(installed):
    host = installed
    digest = host.ship(tarball(version="2.0.0"))
    releases = host.app / "releases"
    releases.rename(host.base / "moved-releases")
    releases.symlink_to(host.outside)
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 5 and result.stderr == f"{releases} is a link, not a folder: not installing\n"
    assert host.snapshot() == before
    host.app.rename(host.base / "moved-app")
    host.app.symlink_to(host.base / "moved-app")
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 5 and result.stderr == f"{host.app} is a link, not a folder: not installing\n"


@needs_python
@as_root
def test_a_current_that_is_a_real_folder_is_refused(installed):
    host = installed
    (host.app / "current").unlink()
    (host.app / "current").mkdir()
    digest = host.ship(tarball(version="2.0.0"))
    before = host.snapshot()
    result = host.run("r2", digest, HEAD)
    assert result.returncode == 5
    assert result.stderr == (
        f"{host.app}/current is a folder, not the link this command makes: not installing (remove it by hand)\n"
    )
    assert host.snapshot() == before


@needs_python
@as_root
def test_stale_links_at_the_old_temporary_name_and_at_the_anchor_are_never_followed(installed):
    """The shell command used a fixed name (.current.new) for the new link; the anchor is replaced by rename."""
    host = installed
    (host.app / ".current.new").symlink_to(host.outside)
    host.anchor.unlink()
    host.anchor.symlink_to(host.outside / "keep.txt")
    outside = {p.name: p.read_bytes() for p in host.outside.iterdir()}
    host.deploy(tarball(version="2.0.0"), "r2", "2:" + "e" * 64)
    assert host.current() == "releases/r2"
    assert os.readlink(host.app / ".current.new") == str(host.outside), "left alone, not used"
    assert not host.anchor.is_symlink() and host.anchor.read_text() == "2 " + "e" * 64 + "\n"
    assert {p.name: p.read_bytes() for p in host.outside.iterdir()} == outside
