"""ACC-3's PostgreSQL login attempt, without a PostgreSQL server (the controller has none): its messages byte for
byte as the protocol 3.0 lays them out, its reading of the server's messages, SCRAM-SHA-256 against RFC 7677's
published exchange and against a verifier stored as PostgreSQL stores it, md5 against the well-known hash of
postgres/postgres, its reading of ICMP errors (only those about its own connection), and whole conversations with
a peer that sends what a server sends: a login read back as current_user, each refusal with its SQLSTATE, a
clear-text request that gets no password, a server that cannot prove it knows the verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioner.remote import pg_login
from provisioner.remote.pg_login import ProtocolError, ScramClient

ROOT = Path(__file__).resolve().parents[3]

# RFC 7677, section 3: the SCRAM-SHA-256 exchange for user "user", password "pencil"
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


# ---- what the client sends --------------------------------------------------------------------------------------
def test_the_startup_message_is_length_version_then_nul_terminated_pairs():
    sent = pg_login.startup_message("alice", "app")
    (length, version) = struct.unpack_from("!II", sent)
    assert length == len(sent) and version == 3 << 16, "protocol 3.0, the length counting itself"
    assert sent[8:] == b"user\0alice\0database\0app\0application_name\0provisioner-verify\0\0"


def test_typed_messages_carry_their_kind_and_a_length_that_counts_itself_not_the_kind():
    assert pg_login.query("SELECT current_user") == b"Q\0\0\0\x18SELECT current_user\0"
    assert pg_login.password_message("md5abc") == b"p\0\0\0\x0bmd5abc\0"
    assert pg_login.TERMINATE == b"X\0\0\0\x04"
    initial = pg_login.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc")
    assert initial == b"p\0\0\0\x21SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"
    assert pg_login.sasl_response(b"c=biws") == b"p\0\0\0\x0ac=biws"


def test_the_request_carries_no_password():
    wanted = json.loads(pg_login.request("10.90.30.21", 5432, "alice", "app"))
    assert wanted == {"address": "10.90.30.21", "port": 5432, "user": "alice", "database": "app", "retries": 3}


# ---- what the server sends --------------------------------------------------------------------------------------
def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _error(code: str, text: str, severity: str = "FATAL") -> bytes:
    fields = [f"S{severity}", f"V{severity}", f"C{code}", f"M{text}", "Fauth.c", "L543", "RClientAuthentication"]
    return _msg(b"E", b"".join(f.encode() + b"\0" for f in fields) + b"\0")


def _auth(code: int, payload: bytes = b"") -> bytes:
    return _msg(b"R", struct.pack("!I", code) + payload)


def test_messages_are_split_only_when_whole():
    stream = _auth(0) + _msg(b"Z", b"I")
    assert pg_login.split_message(stream[:7]) == (None, stream[:7])
    first, rest = pg_login.split_message(stream)
    assert first == ("R", b"\0\0\0\0") and rest == _msg(b"Z", b"I")
    assert pg_login.split_message(rest) == (("Z", b"I"), b"")


def test_a_length_no_postgres_server_sends_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="not PostgreSQL"):
        pg_login.split_message(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ProtocolError):
        pg_login.split_message(b"R\0\0\0\x02")


def test_an_error_response_is_read_by_its_field_codes():
    _, body = pg_login.split_message(_error("28000", 'pg_hba.conf rejects connection for host "10.90.10.254"'))[0]
    fields = pg_login.error_fields(body)
    assert fields["C"] == "28000" and fields["S"] == "FATAL"
    assert fields["M"] == 'pg_hba.conf rejects connection for host "10.90.10.254"'


def test_authentication_requests_data_rows_and_mechanisms_are_decoded():
    assert pg_login.authentication(struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0") == (10, b"SCRAM-SHA-256\0\0")
    assert pg_login.sasl_mechanisms(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0") == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    with pytest.raises(ProtocolError):
        pg_login.authentication(b"\0\0")
    row = struct.pack("!H", 2) + struct.pack("!i", 5) + b"alice" + struct.pack("!i", -1)
    assert pg_login.data_row(row) == ["alice", None]


# ---- passwords ----------------------------------------------------------------------------------------------------
def test_scram_reproduces_rfc_7677s_exchange():
    client = ScramClient("pencil", RFC_NONCE, user="user")
    assert client.client_first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.client_final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    assert client.server_proved(RFC_SERVER_FINAL)


def test_scram_refuses_a_server_that_cannot_prove_it_holds_the_verifier():
    client = ScramClient("pencil", RFC_NONCE, user="user")
    assert not client.server_proved(RFC_SERVER_FINAL), "no signature is expected before the proof is sent"
    client.client_final(RFC_SERVER_FIRST)
    forged = b"v=" + base64.b64encode(b"\0" * 32)
    assert not client.server_proved(forged)
    assert not client.server_proved(b"e=invalid-proof")
    assert not client.server_proved(b"v=not base64!")


@pytest.mark.parametrize(
    ("server_first", "why"),
    [
        (b"r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "not extending the client's nonce"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "the client's nonce alone"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "no iterations"),
        (b"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "a mandatory extension"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", "no salt"),
        (b"garbage", "no attributes"),
    ],
)
def test_scram_refuses_a_malformed_server_first_message(server_first, why):
    with pytest.raises(ProtocolError):
        ScramClient("pencil", RFC_NONCE, user="user").client_final(server_first)


def _stored_verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """pg_authid.rolpassword as PostgreSQL computes it from a password (password_encryption = scram-sha-256):
    SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, a random 16-byte salt (ASCII passwords: SASLprep
    leaves them as they are)."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server_key).decode()}"


def _verifier_parts(verifier: str) -> tuple[str, str, bytes, bytes]:
    """A stored verifier, SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, in its parts."""
    head, keys = verifier.removeprefix("SCRAM-SHA-256$").split("$")
    iterations, salt = head.split(":")
    stored, server_key = (base64.b64decode(k) for k in keys.split(":"))
    return iterations, salt, stored, server_key


def _server_first(verifier: str, client_first: bytes) -> bytes:
    iterations, salt, _, _ = _verifier_parts(verifier)
    nonce = client_first.decode().split("r=", 1)[1] + "ServerPart"
    return f"r={nonce},s={salt},i={iterations}".encode()


def _server_check(
    verifier: str, client_first: bytes, client_final: bytes, server_first: bytes | None = None
) -> tuple[bool, bytes]:
    """What PostgreSQL does with the stored verifier: whether the client's proof recovers a ClientKey that hashes
    to StoredKey, and the server's own signature."""
    _, _, stored, server_key = _verifier_parts(verifier)
    bare = client_first.decode().removeprefix("n,,")
    without_proof, _, proof = client_final.decode().rpartition(",p=")
    server_first = _server_first(verifier, client_first) if server_first is None else server_first
    auth_message = f"{bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.new(stored, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
    proved = hashlib.sha256(client_key).digest() == stored
    return proved, hmac.new(server_key, auth_message, hashlib.sha256).digest()


def test_the_stored_verifier_checks_rfc_7677s_exchange():
    """The verifier built here, with the RFC's salt and iterations, accepts the RFC's proof and signs as the RFC's
    server does: the stand-in server below holds what PostgreSQL would hold."""
    verifier = _stored_verifier("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    client_first = b"n,,n=user,r=" + RFC_NONCE.encode()
    proved, signature = _server_check(verifier, client_first, RFC_CLIENT_FINAL, RFC_SERVER_FIRST)
    assert proved and b"v=" + base64.b64encode(signature) == RFC_SERVER_FINAL
    wrong = _stored_verifier("pencil!", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert not _server_check(wrong, client_first, RFC_CLIENT_FINAL, RFC_SERVER_FIRST)[0]


def test_scram_logs_in_against_the_verifier_postgresql_stores():
    verifier = _stored_verifier("s3cret-Token_value")
    client = ScramClient("s3cret-Token_value", "clientnonce")
    server_first = _server_first(verifier, client.client_first())
    proved, server_signature = _server_check(verifier, client.client_first(), client.client_final(server_first))
    assert proved, "the proof verifies against the stored StoredKey"
    assert client.server_proved(b"v=" + base64.b64encode(server_signature))
    wrong = ScramClient("not-the-password", "clientnonce")
    assert not _server_check(verifier, wrong.client_first(), wrong.client_final(server_first))[0]


def test_md5_answers_with_the_salted_hash_of_the_well_known_postgres_hash():
    salt = b"\x01\x02\x03\x04"
    # md5("postgres" + "postgres") is the pg_authid entry every PostgreSQL administrator has seen
    stored = b"3175bce1d3201d16594cebf9d7eb3f9d"
    assert pg_login.md5_response("postgres", "postgres", salt) == "md5" + hashlib.md5(stored + salt).hexdigest()


# ---- ICMP errors about this connection ----------------------------------------------------------------------------
def _ipv4(source: str, destination: str, protocol: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, protocol, 0,
        socket.inet_aton(source), socket.inet_aton(destination),
    )  # fmt: skip
    return header + payload


def _icmp_error(sender: str, icmp_type: int, code: int, quoted_protocol: int, sport: int, dport: int, to: str):
    quoted = _ipv4("10.90.10.254", to, quoted_protocol, struct.pack("!HHI", sport, dport, 1))
    return _ipv4(sender, "10.90.10.254", 1, struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted)


def test_an_icmp_error_names_its_sender_type_and_code_when_it_quotes_this_connection():
    packet = _icmp_error("10.90.10.1", 3, 13, socket.IPPROTO_TCP, 40000, 5432, "10.90.30.21")
    assert pg_login.icmp_about(packet, 40000, "10.90.30.21", 5432) == pg_login.Icmp("10.90.10.1", 3, 13)


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (_icmp_error("10.90.10.1", 3, 13, socket.IPPROTO_TCP, 40001, 5432, "10.90.30.21"), "another local port"),
        (_icmp_error("10.90.10.1", 3, 13, socket.IPPROTO_TCP, 40000, 22, "10.90.30.21"), "another port"),
        (_icmp_error("10.90.10.1", 3, 13, socket.IPPROTO_TCP, 40000, 5432, "10.90.30.11"), "another host"),
        (_icmp_error("10.90.10.1", 3, 13, socket.IPPROTO_UDP, 40000, 5432, "10.90.30.21"), "a datagram"),
        (_icmp_error("10.90.10.1", 0, 0, socket.IPPROTO_TCP, 40000, 5432, "10.90.30.21"), "an echo reply"),
        (_icmp_error("10.90.10.1", 3, 13, socket.IPPROTO_TCP, 40000, 5432, "10.90.30.21")[:40], "truncated"),
    ],
)
def test_icmp_about_anything_else_is_ignored(packet, why):
    assert pg_login.icmp_about(packet, 40000, "10.90.30.21", 5432) is None, why


# ---- connections --------------------------------------------------------------------------------------------------
def test_a_port_nothing_listens_on_is_a_reset_not_a_refusal_by_anyone():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sock, ended = pg_login.connect_once("127.0.0.1", port)
    assert sock is None and ended == {
        "outcome": "error", "detail": "connection refused (a TCP reset: nothing listens there)",
    }  # fmt: skip


def _serve(script: Callable[[socket.socket], None]) -> tuple[socket.socket, threading.Thread]:
    """A loopback peer that plays `script` to the first connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run() -> None:
        with listener:
            peer, _ = listener.accept()
            with peer:
                peer.settimeout(10)
                script(peer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener, thread


def _read_message(peer: socket.socket, typed: bool = True) -> bytes:
    head = peer.recv(5 if typed else 4, socket.MSG_WAITALL)
    (length,) = struct.unpack_from("!I", head, 1 if typed else 0)
    return head + (peer.recv(length - 4, socket.MSG_WAITALL) if length > 4 else b"")


def _scram_server(password: str, user: str, *, forge: bool = False, session: Callable | None = None):
    """A server holding the role's SCRAM verifier; after the login it answers `SELECT current_user`, or plays
    `session` when given."""
    verifier = _stored_verifier(password)

    def script(peer: socket.socket) -> None:
        startup = _read_message(peer, typed=False)
        assert f"user\0{user}\0database\0app\0".encode() in startup
        peer.sendall(_auth(10, b"SCRAM-SHA-256\0\0"))
        initial = _read_message(peer)
        mechanism, _, rest = initial[5:].partition(b"\0")
        assert mechanism == b"SCRAM-SHA-256"
        client_first = rest[4:]
        peer.sendall(_auth(11, _server_first(verifier, client_first)))
        proved, signature = _server_check(verifier, client_first, _read_message(peer)[5:])
        if not proved:
            peer.sendall(_error("28P01", f'password authentication failed for user "{user}"'))
            return
        if forge:
            peer.sendall(_auth(12, b"v=" + base64.b64encode(b"\0" * 32)))
            return
        peer.sendall(_auth(12, b"v=" + base64.b64encode(signature)))
        peer.sendall(_auth(0) + _msg(b"S", b"server_version\x0015.8\0") + _msg(b"K", b"\0" * 8) + _msg(b"Z", b"I"))
        if session is not None:
            session(peer)
            return
        sql = _read_message(peer)
        assert sql == pg_login.query("SELECT current_user")
        column = b"current_user\0" + struct.pack("!IhIhih", 0, 0, 19, 64, -1, 0)  # a name column, text format
        row = struct.pack("!H", 1) + struct.pack("!i", len(user)) + user.encode()
        peer.sendall(_msg(b"T", struct.pack("!H", 1) + column) + _msg(b"D", row))
        peer.sendall(_msg(b"C", b"SELECT 1\0") + _msg(b"Z", b"I"))
        assert _read_message(peer) == pg_login.TERMINATE

    return script


def _converse(script, user="alice", password="s3cret-Token_value", queries=None) -> dict:
    listener, thread = _serve(script)
    sock, ended = pg_login.connect_once(*listener.getsockname())
    assert sock is not None, ended
    with sock:
        result = pg_login.converse(sock, user, "app", password, queries)
    thread.join(10)
    return result


def test_a_scram_login_is_read_back_as_current_user():
    result = _converse(_scram_server("s3cret-Token_value", "alice"))
    assert result == {"outcome": "logged-in", "method": "scram-sha-256", "server_proved": True, "current_user": "alice"}


def test_a_wrong_password_is_the_servers_refusal_with_its_sqlstate():
    result = _converse(_scram_server("the-real-one", "alice"), password="a-guess")
    assert result["outcome"] == "server-refused" and result["sqlstate"] == "28P01"
    assert result["message"] == 'password authentication failed for user "alice"'


def test_a_pg_hba_refusal_before_any_password_is_the_servers_refusal():
    def script(peer: socket.socket) -> None:
        _read_message(peer, typed=False)
        peer.sendall(_error("28000", 'pg_hba.conf rejects connection for host "10.90.10.254", user "alice"'))

    result = _converse(script)
    assert (result["outcome"], result["sqlstate"]) == ("server-refused", "28000")


def test_a_server_that_cannot_prove_it_holds_the_verifier_is_no_login():
    result = _converse(_scram_server("s3cret-Token_value", "alice", forge=True))
    assert result["outcome"] == "error" and "SCRAM signature does not verify" in result["detail"]


def test_a_clear_text_password_request_gets_no_password():
    received = []

    def script(peer: socket.socket) -> None:
        _read_message(peer, typed=False)
        peer.sendall(_auth(3))
        peer.settimeout(2)
        try:
            received.append(peer.recv(1024))
        except TimeoutError:
            received.append(b"")

    result = _converse(script)
    assert result == {"outcome": "error", "detail": "the server asks for the password in clear text: not sent"}
    assert b"s3cret" not in b"".join(received)


def test_md5_is_answered_and_a_fatal_after_the_password_still_counts_as_logged_in():
    """The password was accepted (AuthenticationOk) before the server found something else wrong: in production
    that is a login, whatever follows."""
    sent = []

    def script(peer: socket.socket) -> None:
        _read_message(peer, typed=False)
        peer.sendall(_auth(5, b"salt"))
        sent.append(_read_message(peer))
        peer.sendall(_auth(0) + _error("3D000", 'database "app" does not exist'))

    result = _converse(script)
    assert sent == [pg_login.password_message(pg_login.md5_response("alice", "s3cret-Token_value", b"salt"))]
    assert result == {
        "outcome": "logged-in", "method": "md5", "server_proved": False, "current_user": None,
        "after_login": {"sqlstate": "3D000", "message": 'database "app" does not exist'},
    }  # fmt: skip


def test_something_that_is_not_postgresql_is_another_error():
    def script(peer: socket.socket) -> None:
        _read_message(peer, typed=False)
        peer.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

    result = _converse(script)
    assert result["outcome"] == "error" and "not PostgreSQL" in result["detail"]


def test_the_script_runs_on_its_own_text_with_the_password_on_stdin():
    """As the probe point runs it: `python -c <the file's text> <request>`, the password on stdin only."""
    listener, thread = _serve(_scram_server("s3cret-Token_value", "alice"))
    address, port = listener.getsockname()
    request = pg_login.request(address, port, "alice", "app", retries=0)
    ran = subprocess.run(
        [sys.executable, "-c", pg_login.script(), request],
        input="s3cret-Token_value\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    thread.join(10)
    assert ran.returncode == 0, ran.stderr
    result = pg_login.parse(json.loads(ran.stdout))
    assert (result.outcome, result.current_user, result.server_proved, result.tries) == ("logged-in", "alice", True, 1)
    assert "s3cret" not in request


# ---- the controller's read-only reader (DATA-1, DATA-2) ----------------------------------------------------------
def _rows(*rows: tuple[str | None, ...]) -> bytes:
    out = b""
    for row in rows:
        body = struct.pack("!H", len(row))
        for value in row:
            body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value.encode())) + value.encode()
        out += _msg(b"D", body)
    return out


def test_the_reader_gets_each_querys_rows_or_its_error_in_turn():
    asked = []

    def session(peer: socket.socket) -> None:
        asked.append(_read_message(peer))
        peer.sendall(_rows(("customers", "email", "text"), ("customers", "note", None)))
        peer.sendall(_msg(b"C", b"SELECT 2\0") + _msg(b"Z", b"I"))
        asked.append(_read_message(peer))
        peer.sendall(_error("42P01", 'relation "provisioner_provenance" does not exist') + _msg(b"Z", b"I"))
        asked.append(_read_message(peer))

    queries = ["SELECT 1", "SELECT record FROM provisioner_provenance"]
    result = _converse(_scram_server("r3ader", "provisioner_reader", session=session), "provisioner_reader",
                       "r3ader", queries)  # fmt: skip
    assert asked == [pg_login.query(queries[0]), pg_login.query(queries[1]), pg_login.TERMINATE]
    assert result["outcome"] == "logged-in" and result["server_proved"] is True
    assert result["answers"] == [
        {"rows": [["customers", "email", "text"], ["customers", "note", None]]},
        {"sqlstate": "42P01", "message": 'relation "provisioner_provenance" does not exist'},
    ]
    typed = pg_login.parse({"address": "a", "user": "u", "database": "d", "tries": 1, **result})
    assert typed.answers[0].rows == (("customers", "email", "text"), ("customers", "note", None))
    assert (typed.answers[1].rows, typed.answers[1].sqlstate) == ((), "42P01")


def test_the_reader_asks_nothing_of_a_server_that_did_not_prove_it_holds_the_verifier():
    """An md5 login proves nothing about the server (it could be anyone who answers on the port): no query leaves."""
    received = []

    def script(peer: socket.socket) -> None:
        _read_message(peer, typed=False)
        peer.sendall(_auth(5, b"salt"))
        _read_message(peer)
        peer.sendall(_auth(0) + _msg(b"Z", b"I"))
        peer.settimeout(2)
        try:
            received.append(peer.recv(1024))
        except TimeoutError:
            received.append(b"")

    result = _converse(script, queries=["SELECT * FROM customers"])
    assert result["outcome"] == "error" and "asked nothing" in result["detail"], result
    assert b"customers" not in b"".join(received)


def test_a_reader_request_carries_its_queries_and_still_no_password():
    wanted = json.loads(pg_login.request("10.90.10.21", 5432, "provisioner_reader", "app", queries=["SELECT 1"]))
    assert wanted["queries"] == ["SELECT 1"] and "password" not in json.dumps(wanted)
