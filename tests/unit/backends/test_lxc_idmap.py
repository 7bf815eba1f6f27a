"""The lab containers' user-id mapping: the base image shifted once, seeds written shifted, folders the mapped
root can pass through but not change. Real files owned by real ids (the suite runs as root)."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from provisioner.backends.lxc import containers, idmap
from provisioner.backends.lxc.containers import SeedFile

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing file owners needs root")

ROOT = idmap.ID_OFFSET


def owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_config_maps_root_to_an_unprivileged_range():
    lines = containers.config_header("c", "h", Path("/base"), Path("/delta"))
    assert "lxc.idmap = u 0 100000 65536" in lines
    assert "lxc.idmap = g 0 100000 65536" in lines


def test_shift_moves_every_owner_and_keeps_setuid_bits(tmp_path):
    tree = tmp_path / "rootfs"
    (tree / "usr/bin").mkdir(parents=True)
    sudo = tree / "usr/bin/sudo"
    sudo.write_text("x")
    sudo.chmod(0o4755)
    shadow = tree / "etc/shadow"
    shadow.parent.mkdir()
    shadow.write_text("root:*:")
    os.chown(shadow, 0, 42)
    shadow.chmod(0o640)
    home = tree / "home/auto"
    home.mkdir(parents=True)
    os.chown(home, 1000, 1000)
    link = tree / "usr/bin/link-to-dir"
    link.symlink_to("/etc")
    dangling = tree / "etc/dangling"
    dangling.symlink_to("/nowhere")

    shifted = idmap.shift_tree(tree)

    assert shifted == 10  # rootfs, usr, usr/bin, sudo, link, etc, shadow, dangling, home, home/auto: each once
    assert owner(tree) == (ROOT, ROOT)
    assert owner(sudo) == (ROOT, ROOT)
    assert stat.S_IMODE(sudo.stat().st_mode) == 0o4755, "chown cleared the set-uid bit and it was not restored"
    assert owner(shadow) == (ROOT, ROOT + 42)
    assert stat.S_IMODE(shadow.stat().st_mode) == 0o640
    assert owner(home) == (ROOT + 1000, ROOT + 1000)
    assert owner(link) == (ROOT, ROOT), "the link itself is shifted, not what it points to"
    assert owner(dangling) == (ROOT, ROOT)
    assert owner(Path("/etc")) == (0, 0), "a link was followed out of the tree"
    assert idmap.shift_tree(tree) == 0, "a second shift must change nothing"


def test_shift_refuses_an_owner_the_mapping_cannot_hold(tmp_path):
    tree = tmp_path / "rootfs"
    tree.mkdir()
    odd = tree / "odd"
    odd.write_text("x")
    os.chown(odd, 70000, 0)
    with pytest.raises(ValueError, match="id 70000 is outside a container's mapped range"):
        idmap.shift_tree(tree)


def test_file_capability_is_rewritten_for_the_containers_root():
    v2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw, effective
    v3 = idmap.namespaced_capability(v2)
    magic, permitted, inheritable, _, _, rootid = struct.unpack("<IIIIII", v3)
    assert magic == 0x03000001
    assert permitted == 1 << 13 and inheritable == 0
    assert rootid == ROOT
    with pytest.raises(ValueError, match="revision 1"):
        idmap.namespaced_capability(struct.pack("<III", 0x01000000, 0, 0) + b"\0" * 8)


def test_shift_keeps_a_file_capability(tmp_path):
    tree = tmp_path / "rootfs"
    tree.mkdir()
    ping = tree / "ping"
    ping.write_text("x")
    try:
        os.setxattr(ping, idmap.CAPABILITY_XATTR, struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0))
    except OSError as exc:
        pytest.skip(f"this file system keeps no file capabilities: {exc}")
    idmap.shift_tree(tree)
    value = os.getxattr(ping, idmap.CAPABILITY_XATTR)
    assert struct.unpack_from("<I", value)[0] >> 24 == 3
    assert struct.unpack_from("<I", value, 20)[0] == ROOT


def test_identity_map_is_told_from_a_shifted_one():
    assert idmap.is_identity_map("         0          0 4294967295\n")
    assert not idmap.is_identity_map("         0     100000      65536\n")
    assert not idmap.is_identity_map("")


def test_container_folder_is_roots_and_only_passable_by_the_mapped_root(tmp_path):
    delta = containers.make_directory(tmp_path / "c1")
    folder = tmp_path / "c1"
    assert owner(folder) == (0, ROOT)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750, "others must not read a container's config"
    assert owner(folder / "overlay") == (ROOT, ROOT), "LXC makes the overlay's work folder there as the mapped root"
    assert owner(delta) == (ROOT, ROOT), "the upper layer is the container's /: its root owns it"


def test_seeds_are_written_with_shifted_owners(tmp_path):
    base = tmp_path / "base"
    (base / "home/auto").mkdir(parents=True)
    os.chown(base / "home", ROOT, ROOT)
    os.chown(base / "home/auto", ROOT + 1000, ROOT + 1000)
    delta = containers.make_directory(tmp_path / "c1")
    containers.write_seed(
        base,
        delta,
        [
            *containers.authorized_keys_files("/home/auto", 1000, 1000, "ssh-ed25519 AAAA x\n"),
            SeedFile("/etc/new/dir/file", b"x", 0o600),
            SeedFile("/etc/link", b"/etc/new", kind="symlink"),
        ],
    )
    assert owner(delta / "home/auto/.ssh/authorized_keys") == (ROOT + 1000, ROOT + 1000)
    assert owner(delta / "home/auto") == (ROOT + 1000, ROOT + 1000), "a mirrored folder keeps the base's owner"
    assert owner(delta / "etc/new/dir") == (ROOT, ROOT), "a folder the base lacks belongs to the container's root"
    assert owner(delta / "etc/new/dir/file") == (ROOT, ROOT)
    assert owner(delta / "etc/link") == (ROOT, ROOT)
    with pytest.raises(ValueError, match="outside a container's mapped range"):
        containers.write_seed(base, delta, [SeedFile("/x", b"", uid=70000)])
