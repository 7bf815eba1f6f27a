"""`release create` reads the artifact once: the members are checked, the digest computed and the store written
from the same bytes, and no path is opened again (issue 18). It refuses the members the deploy command refuses
(tests/unit/roles/test_deploy_command.py runs both on the same corpus), as bad input: exit 2, nothing recorded."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import release_artifact

from provisioner.errors import ExitCode, InputError
from provisioner.releases import artifacts
from provisioner.releases.ledger import Ledger
from provisioner.workspace.site_state import SiteState

ALLOWED = "a release holds only regular files and folders with relative names (no '..', no control characters)"
_OPENED: list[str] | None = None


def _record_opens(event: str, args: tuple[object, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)  # records only while a test sets _OPENED


def with_member(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        version = tarfile.TarInfo("VERSION")
        version.size = 6
        tar.addfile(version, io.BytesIO(b"1.0.0\n"))
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (special("etc", tarfile.SYMTYPE, "/etc"), "member etc is a symbolic link (to /etc)"),
        (special("shadow", tarfile.LNKTYPE, "/etc/shadow"), "member shadow is a hard link (to /etc/shadow)"),
        (special("null", tarfile.CHRTYPE), "member null is a device node"),
        (special("pipe", tarfile.FIFOTYPE), "member pipe is a FIFO"),
        (special("../up", tarfile.REGTYPE), "member ../up has a '..' component"),
        (special("/etc/cron.d/x", tarfile.REGTYPE), "member /etc/cron.d/x has an absolute name"),
        (special("a\nb", tarfile.REGTYPE), "member 'a\\nb' has a control character in its name"),
    ],
    ids=["symlink", "hard-link", "device", "fifo", "dotdot", "absolute", "control-character"],
)
def test_release_create_refuses_a_forbidden_member_as_bad_input_and_records_nothing(shop, info, message):
    artifact = with_member(shop.tmp / "evil.tar.gz", info)
    result = shop.cli("create", "--artifact", str(artifact), "--as", "alice")
    assert result.rc == 2, (result.rc, result.stderr)
    assert " ".join(result.stderr.split()) == f"invalid: --artifact {artifact}: {message}; {ALLOWED}", result.stderr
    assert "Traceback" not in result.stderr
    assert not Ledger(shop.state).path.exists(), "nothing was recorded"
    assert not artifacts.store_dir(shop.state).exists() or not any(artifacts.store_dir(shop.state).iterdir())


def test_the_store_holds_exactly_the_bytes_whose_digest_the_ledger_records(shop):
    artifact = release_artifact(shop.tmp, "1.0.0")
    original = artifact.read_bytes()
    result = shop.cli("create", "--artifact", str(artifact), "--as", "alice", "--json")
    assert result.rc == 0, result.stderr
    stored = artifacts.stored_path(shop.state, result.json["digest"]).read_bytes()
    assert stored == original
    assert result.json["digest"] == "sha256:" + hashlib.sha256(stored).hexdigest()


def test_the_artifact_is_opened_once_and_a_swap_after_that_read_changes_nothing(tmp_path, monkeypatch):
    """What is checked, hashed and stored is one read: the file swapped right after it (as a racing writer
    would) is never looked at again, by name or otherwise."""
    global _OPENED
    artifact = release_artifact(tmp_path, "1.0.0")
    original = artifact.read_bytes()
    read = artifacts.read_once

    def read_then_swap(path: Path) -> bytes:
        data = read(path)
        release_artifact(tmp_path, "6.6.6").replace(artifact)  # another release under the same name
        return data

    monkeypatch.setattr(artifacts, "read_once", read_then_swap)
    state = SiteState("t", tmp_path / "state")
    _OPENED = []
    try:
        inspected = artifacts.inspect(artifact)
        stored = artifacts.keep(state, inspected)
        opened = [p for p in _OPENED if Path(p).resolve() == artifact.resolve()]
    finally:
        _OPENED = None
    assert opened == [str(artifact)], "one open of the artifact, none after it"
    assert artifact.read_bytes() != original, "the swap did happen"
    assert inspected.version == "1.0.0" and inspected.content == original
    assert inspected.digest == "sha256:" + hashlib.sha256(original).hexdigest()
    assert stored.read_bytes() == original


def test_keep_replaces_a_stored_copy_that_no_longer_has_its_digest(tmp_path):
    state = SiteState("t", tmp_path / "state")
    inspected = artifacts.inspect(release_artifact(tmp_path, "1.0.0"))
    target = artifacts.stored_path(state, inspected.digest)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"damaged")
    assert artifacts.keep(state, inspected).read_bytes() == inspected.content
    assert [p.name for p in target.parent.iterdir()] == [target.name], "no temporary file left"


def test_an_artifact_path_that_is_not_a_regular_file_or_too_large_is_bad_input(tmp_path, monkeypatch):
    fifo = tmp_path / "pipe.tar.gz"
    os.mkfifo(fifo)
    cases = [
        (fifo, "not a regular file"),
        (tmp_path, "a folder"),
        (tmp_path / "missing.tar.gz", "no such file"),
    ]
    for path, why in cases:
        with pytest.raises(InputError) as refused:
            artifacts.inspect(path)
        assert str(refused.value) == f"--artifact {path}: {why}; {artifacts.WHAT}"
        assert refused.value.exit_code == ExitCode.INVALID
    big = release_artifact(tmp_path, "1.0.0")
    monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", big.stat().st_size - 1)
    with pytest.raises(InputError) as refused:
        artifacts.inspect(big)
    assert str(refused.value) == f"--artifact {big}: larger than {big.stat().st_size - 1} bytes; {artifacts.WHAT}"


def test_too_many_members_are_refused(tmp_path):
    path = tmp_path / "crowd.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for number in range(artifacts.MAX_MEMBERS + 1):
            tar.addfile(special(f"d{number}", tarfile.DIRTYPE))
    with pytest.raises(InputError) as refused:
        artifacts.inspect(path)
    assert str(refused.value) == f"--artifact {path}: more than 10000 members; {artifacts.WHAT}"
