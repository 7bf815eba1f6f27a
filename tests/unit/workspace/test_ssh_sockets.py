"""SSH connection sockets live in the site state's own 0700 folder, never at a predictable /tmp path; a folder
someone could have prepared (a link, another owner, open mode) is refused, and so is one too deep for a socket."""

from __future__ import annotations

import os
import shlex
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import short_temp_folder

from provisioner.ansible_run.runner import ansible_env, write_ansible_cfg
from provisioner.errors import ExitCode, InputError, ProvisionError
from provisioner.remote.ssh import Remote
from provisioner.workspace import ssh_sockets
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: pytest's own is nearly too deep for a socket folder by itself."""
    with short_temp_folder() as folder:
        yield folder


def short_state(tmp_path: Path) -> SiteState:
    return SiteState("example", tmp_path / "example")


def state_with_socket_folder_of(tmp_path: Path, length: int) -> SiteState:
    """A site state whose `ssh` folder's path is exactly `length` bytes long."""
    pad = length - len(str(tmp_path)) - len("/") - len("/example/ssh")
    assert pad > 0
    state = SiteState("example", tmp_path / ("d" * pad) / "example")
    assert len(str(state.ssh_dir)) == length
    return state


def test_ansible_connects_through_the_state_folder(tmp_path):
    state = short_state(tmp_path)
    env = ansible_env(state)
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(tmp_path / "example" / "ssh")
    args = shlex.split(env["ANSIBLE_SSH_ARGS"])
    assert "ControlMaster=auto" in args and "ControlPersist=120s" in args
    # no ControlPath of our own: Ansible then names each socket by its short hash, inside the folder
    assert not any(a.lower().startswith("controlpath") for a in args)
    assert "ANSIBLE_SSH_CONTROL_PATH" not in env
    assert not any("/tmp/provisioner" in value for value in env.values())
    cfg = write_ansible_cfg(state).read_text()
    assert f"control_path_dir = {tmp_path / 'example' / 'ssh'}\n" in cfg


def test_the_folder_is_created_0700_whatever_the_umask(tmp_path):
    state = short_state(tmp_path)
    previous = os.umask(0)
    try:
        folder = state.ssh_sockets()
    finally:
        os.umask(previous)
    info = os.lstat(folder)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.geteuid()
    assert state.ssh_sockets() == folder, "a second run accepts its own folder"


def test_verify_masters_live_in_the_same_folder(tmp_path):
    state = short_state(tmp_path)
    host = Remote(state).host("10.90.10.11")
    controlpath = host.backend.controlpath  # type: ignore[attr-defined]
    name = ssh_sockets.verify_socket_name(AUTOMATION_USER, "10.90.10.11")
    assert controlpath == str(tmp_path / "example" / "ssh" / name)
    assert len(name) == ssh_sockets.NAME_MAX and "%" not in name
    assert ssh_sockets.verify_socket_name(AUTOMATION_USER, "10.90.10.12") != name, "one socket per host"
    assert stat.S_IMODE(os.lstat(tmp_path / "example" / "ssh").st_mode) == 0o700


def test_a_looser_folder_is_refused_and_left_alone(tmp_path):
    state = short_state(tmp_path)
    state.ensure()
    state.ssh_dir.mkdir(mode=0o700)
    state.ssh_dir.chmod(0o755)
    with pytest.raises(ProvisionError) as caught:
        ansible_env(state)
    assert str(caught.value).startswith(
        f"{state.ssh_dir}: the SSH connection-socket folder has mode 0755; it must be 0700"
    )
    assert caught.value.exit_code == ExitCode.FAILED
    assert stat.S_IMODE(os.lstat(state.ssh_dir).st_mode) == 0o755, "nothing touched"


def test_a_group_writable_sticky_folder_is_refused(tmp_path):
    state = short_state(tmp_path)
    state.ensure()
    state.ssh_dir.mkdir()
    state.ssh_dir.chmod(0o1770)
    with pytest.raises(ProvisionError, match="has mode 1770; it must be 0700"):
        state.ssh_sockets()


def test_a_symlink_is_refused(tmp_path):
    state = short_state(tmp_path)
    state.ensure()
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir(mode=0o700)
    state.ssh_dir.symlink_to(elsewhere)
    with pytest.raises(ProvisionError) as caught:
        Remote(state).host("10.90.10.11")
    assert str(caught.value).startswith(
        f"{state.ssh_dir}: the SSH connection-socket folder is a symbolic link (to {elsewhere})"
    )
    assert state.ssh_dir.is_symlink(), "nothing touched"


def test_a_plain_file_is_refused(tmp_path):
    state = short_state(tmp_path)
    state.ensure()
    state.ssh_dir.write_text("")
    with pytest.raises(ProvisionError, match="the SSH connection-socket folder is not a folder"):
        state.ssh_sockets()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another owner needs root")
def test_another_owners_folder_is_refused(tmp_path):
    state = short_state(tmp_path)
    state.ensure()
    state.ssh_dir.mkdir(mode=0o700)
    os.chown(state.ssh_dir, 65534, 65534)
    with pytest.raises(ProvisionError) as caught:
        ansible_env(state)
    assert str(caught.value).startswith(
        f"{state.ssh_dir}: the SSH connection-socket folder belongs to uid 65534, not to uid 0 who runs provision"
    )


def test_a_state_folder_too_deep_for_a_socket_gets_a_short_private_folder(tmp_path):
    """A checkout deep in the file system (make demo in a test's temporary clone) still works: the sockets go to a
    private folder named by a hash of the state folder, under /run (Ansible resolves links, so no link will do)."""
    state = state_with_socket_folder_of(tmp_path, ssh_sockets.FOLDER_MAX + 30)
    path = Path(ansible_env(state)["ANSIBLE_SSH_CONTROL_PATH_DIR"])
    assert path != state.ssh_dir and len(str(path)) <= ssh_sockets.FOLDER_MAX
    assert not path.is_symlink() and path.parent.name == f"provisioner-ssh-{os.geteuid()}"
    for folder in (path, path.parent):
        assert folder.lstat().st_uid == os.geteuid() and stat.S_IMODE(folder.lstat().st_mode) == 0o700
    longest = path / (ssh_sockets.verify_socket_name(AUTOMATION_USER, "10.90.10.11") + "." + "x" * 16)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(longest))  # the master's temporary name binds
    longest.unlink()
    assert Path(ansible_env(state)["ANSIBLE_SSH_CONTROL_PATH_DIR"]) == path, "the same folder, every time"


def test_a_loose_short_folder_is_refused(tmp_path):
    state = state_with_socket_folder_of(tmp_path, ssh_sockets.FOLDER_MAX + 30)
    path = state.ssh_sockets()
    path.chmod(0o755)
    try:
        with pytest.raises(ProvisionError, match="of a deep state folder has mode 0755"):
            state.ssh_sockets()
    finally:
        path.chmod(0o700)


def test_the_longest_allowed_folder_still_holds_the_master_socket(tmp_path):
    """The arithmetic against the kernel: ssh's temporary master name in a folder of exactly FOLDER_MAX bytes
    binds, one byte more does not."""
    folder = state_with_socket_folder_of(tmp_path, ssh_sockets.FOLDER_MAX).ssh_sockets()
    longest = folder / (ssh_sockets.verify_socket_name(AUTOMATION_USER, "10.90.10.11") + "." + "x" * 16)
    assert len(str(longest)) == ssh_sockets.SOCKET_PATH_MAX
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(longest))
    with socket.socket(socket.AF_UNIX) as listener, pytest.raises(OSError):
        listener.bind(str(longest) + "y")


def test_a_percent_sign_in_the_state_folder_is_refused(tmp_path):
    state = SiteState("example", tmp_path / "50%" / "example")
    with pytest.raises(InputError, match="holds '%', which ssh reads as a token in ControlPath"):
        state.ssh_sockets()
