"""Several API endpoints (`backend.host` a list): the client uses the first that answers, moves to the next when
the one it uses cannot be reached any more, and a site whose endpoints all fail is refused naming each of them."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from helpers import run_cli, write_site
from pvefake import FakePve
from test_proxmox_backend import backend_for, converge, small_data

pytest.importorskip("proxmoxer")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused, and nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class Relay:
    """A TCP relay to the fake on a port of its own: another endpoint of the same cluster, which `stop` takes
    down (listener and open connections), as a node that goes down mid-run."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.accepted += 1
                self.open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone may not
        self.listener.close()
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def endpoints_data(fake: FakePve, *ports: int) -> dict:
    data = small_data(fake, "pvends")
    data["backend"]["host"] = [f"127.0.0.1:{port}" for port in ports]
    return data


def test_an_endpoint_that_refuses_connections_is_passed_over(fake, tmp_path, closed_port):
    backend = backend_for(tmp_path, endpoints_data(fake, closed_port, fake.port))
    converge(backend)
    assert backend.client.settings.host == f"127.0.0.1:{fake.port}"
    again = backend_for(tmp_path, endpoints_data(fake, closed_port, fake.port))
    again.preflight()
    assert again.plan().empty


def test_a_node_going_down_mid_run_moves_the_calls_to_the_next_endpoint(fake, tmp_path):
    relay = Relay(fake.port)
    try:
        backend = backend_for(tmp_path, endpoints_data(fake, relay.port, fake.port))
        backend.preflight()
        backend.preflight_build()
        plan = backend.plan()
        assert backend.client.settings.host == f"127.0.0.1:{relay.port}", "the first endpoint answers: it is used"
        assert not plan.empty
        relay.stop()  # the first node goes down between plan and apply
        backend.apply(plan, lambda message: None)
    finally:
        relay.stop()
    assert backend.client.settings.host == f"127.0.0.1:{fake.port}"
    fake.wait_tasks()
    check = backend_for(tmp_path, endpoints_data(fake, fake.port))
    check.preflight()
    assert check.plan().empty, "the apply did not finish on the second endpoint"


def test_a_site_whose_endpoints_all_fail_is_refused_naming_each(fake, tmp_path, closed_port):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        second = int(other.getsockname()[1])
        path = write_site(tmp_path / "pvends", endpoints_data(fake, closed_port, second))
        result = run_cli("plan", str(path))
    assert result.rc == 2, result.stderr
    assert "backend.host" in result.stderr and str(path) in result.stderr
    for port in (closed_port, second):
        assert f"127.0.0.1:{port} (connection refused)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("host", "key_path", "text"),
    [
        (["127.0.0.1:8006", "127.0.0.1"], "backend.host[1]", "already endpoint 1"),
        (["a.example:8006", "A.example:8006"], "backend.host[1]", "already endpoint 1"),
        (["127.0.0.1:8006", "127.0.0.1:70000"], "backend.host[1]", "port 70000 is out of range"),
        ("127.0.0.1:0", "backend.host", "port 0 is out of range"),
        ([], "backend.host", ""),
    ],
)
def test_endpoints_are_checked_before_anything_is_contacted(fake, tmp_path, host, key_path, text):
    data = small_data(fake, "pvends")
    data["backend"]["host"] = host
    path = write_site(tmp_path / "pvends", data)
    start = len(fake.requests)
    result = run_cli("plan", str(path))
    assert result.rc == 2, result.stderr
    assert key_path in result.stderr and text in result.stderr, result.stderr
    assert str(path) in result.stderr
    assert len(fake.requests) == start, "the API was contacted"


def test_a_single_endpoint_is_not_probed_and_a_list_is_probed_once(fake, tmp_path, closed_port):
    single = backend_for(tmp_path, small_data(fake, "pvends"))
    assert single.client.fork() is not None
    assert single.calls.calls == [], "one endpoint: connecting costs no call"
    listed = backend_for(tmp_path, endpoints_data(fake, closed_port, fake.port))
    assert listed.client.settings.host == f"127.0.0.1:{fake.port}"
    assert listed.calls.calls == [("GET", "version"), ("GET", "version")], "each endpoint tried once"
