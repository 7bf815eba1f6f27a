"""DATA-1's reading of a machine's data folders from the hypervisor's side, against a real tree a root user inside
the machine could have made: the files are read; links (in the folder's path or below it) are never followed out
of the machine's root; FIFOs, sockets and device files are never opened; a folder under the kernel's own file
systems or with '..' in its path is not read."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from provisioner.personal_data.folders import read_tree


@pytest.fixture
def root(tmp_path):
    machine = tmp_path / "rootfs"
    (machine / "srv/data/sub").mkdir(parents=True)
    (machine / "srv/data/export.csv").write_text("id,email\n1,margaret.thornton@btinternet.com\n")
    (machine / "srv/data/sub/deep.txt").write_text("deeper\n")
    (machine / "srv/data/blob.bin").write_bytes(b"\x00\x01binary")
    outside = tmp_path / "controller-secret"
    outside.write_text("the controller's own key\n")
    (machine / "srv/data/escape").symlink_to(outside)  # a link to a path of the hypervisor
    (machine / "srv/data/rooted").symlink_to("/etc")  # an absolute link, read from the host it points there
    (machine / "srv/data/linked-dir").symlink_to(tmp_path)
    os.mkfifo(machine / "srv/data/pipe")  # opening it to read would wait for a writer
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(machine / "srv/data/sock"))
    (machine / "srv/linked").symlink_to(tmp_path)  # a folder whose path runs through a link
    fd = os.open(machine, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)
    server.close()


def test_regular_files_are_read_and_nothing_else_is_opened(root):
    done: list[list[tuple[str, str | None]]] = []
    reader = threading.Thread(target=lambda: done.append(read_tree(root, ["/srv/data"], 4096)), daemon=True)
    reader.start()
    reader.join(20)
    assert done, "the reading hung (a FIFO was opened)"
    assert sorted(done[0]) == [
        ("/srv/data/blob.bin", None),
        ("/srv/data/export.csv", "id,email\n1,margaret.thornton@btinternet.com\n"),
        ("/srv/data/sub/deep.txt", "deeper\n"),
    ]


@pytest.mark.parametrize(
    "folder", ["/srv/linked", "/srv/linked/rootfs/srv/data", "/srv/data/../data", "/proc", "/sys/kernel", "/dev"]
)
def test_a_folder_through_a_link_or_dotdot_or_in_a_kernel_file_system_is_not_read(root, folder):
    assert read_tree(root, [folder], 4096) == []


def test_a_missing_folder_is_nothing_to_read(root):
    assert read_tree(root, ["/srv/none", "/srv/data/export.csv"], 4096) == []


def test_only_the_first_bytes_are_read(root):
    found = dict(read_tree(root, ["/srv/data"], 9))
    assert found["/srv/data/export.csv"] == "id,email\n"
