"""HTTPS transport: a threading HTTP/1.1 server on loopback with a throw-away self-signed cert.

proxmoxer only speaks `https://`, so the fake serves TLS; clients use `verify_ssl=False` or the
generated certificate (`FakePve.cert_path`). The status line carries PVE's custom reason phrase
via `send_response(code, message)` because proxmoxer reports `resp.reason`, not the body.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .api import Api
from .host_firewall import admits

log = logging.getLogger(__name__)


def make_self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """Write cert.pem/key.pem for `host` (valid two days) into `directory`."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    _with_cryptography(cert_path, key_path, host)  # cryptography ships with ansible-core
    key_path.chmod(0o600)
    return cert_path, key_path


def _with_cryptography(cert_path: Path, key_path: Path, host: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "pvefake"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Manager CA"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as pveproxy; proxmoxer's session reuses connections
    timeout = 30  # idle keep-alive connections end instead of pinning a thread forever
    disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms delayed-ACK stall
    server: PveHttpServer

    def version_string(self) -> str:
        return "pve-api-daemon/3.0"

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.api.handle(self.command, split.path, split.query, body, headers)
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status, response.reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class PveHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, api: Api, ssl_context: ssl.SSLContext) -> None:
        self.api = api
        self.ssl_context = ssl_context
        self.refused: list[tuple[str, str]] = []  # (peer, why) of each connection the node's firewall refused
        super().__init__((host, port), _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """The node's firewall, for a new connection only: one already open is never cut (conntrack)."""
        with self.api.state.lock:
            admitted, why = admits(self.api.state, str(client_address[0]))
        if not admitted:
            self.refused.append((str(client_address[0]), why))
        return admitted

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the per-connection thread, so a stalled client never blocks accept().
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, ConnectionError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()


class HttpsServer:
    """Owns the listening server and its serving thread."""

    def __init__(self, api: Api, host: str, port: int, cert_path: Path, key_path: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self.server = PveHttpServer(host, port, api, context)
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
