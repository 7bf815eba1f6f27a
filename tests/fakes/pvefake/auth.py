"""Authentication: API tokens and ticket cookies, as pve-http-server checks them.

* `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET` (also a space instead of the first `=`);
  the token id is split from the secret at the LAST `=`. No CSRF token needed.
* `Cookie: PVEAuthCookie=<ticket>` from `POST /access/ticket`; non-GET requests must also send the
  `CSRFPreventionToken` header of that ticket.
Failures are 401 with an empty body; the reason phrase says why.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import ApiError
from .state import State

TOKEN_HEADER_RE = re.compile(r"(?:^|\s)PVEAPIToken(?:=| )([^;]*)")
TICKET_LIFETIME = 7200


@dataclass(frozen=True)
class Identity:
    userid: str
    tokenid: str | None = None

    @property
    def auth_id(self) -> str:
        """What PVE calls the auth id: `user@realm` or `user@realm!token` (also the UPID user field)."""
        return f"{self.userid}!{self.tokenid}" if self.tokenid else self.userid

    @property
    def is_root(self) -> bool:
        return self.userid == "root@pam" and self.tokenid is None


@dataclass
class _Ticket:
    userid: str
    csrf: str
    issued: float


def unauthorized(reason: str) -> ApiError:
    return ApiError(401, reason)


class Authenticator:
    def __init__(self, state: State) -> None:
        self.state = state
        self._tickets: dict[str, _Ticket] = {}
        self._guard = threading.Lock()

    def authenticate(self, method: str, headers: dict[str, str]) -> Identity:
        auth = headers.get("authorization", "")
        m = TOKEN_HEADER_RE.search(auth)
        if m:
            return self._token_identity(m.group(1).strip())
        ticket = _cookie(headers.get("cookie", ""), "PVEAuthCookie")
        if ticket is None:
            raise unauthorized("No ticket")
        info = self._verify_ticket(ticket)
        if info is None:
            raise unauthorized("authentication failure")
        if method != "GET" and headers.get("csrfpreventiontoken") != info.csrf:
            raise unauthorized("Permission denied - invalid csrf token")
        self._check_user(info.userid)
        return Identity(info.userid)

    def _token_identity(self, value: str) -> Identity:
        full_id, sep, secret = value.rpartition("=")
        userid, bang, tokenid = full_id.partition("!")
        if not sep or not bang:
            raise unauthorized("Authentication failed!")
        with self.state.lock:
            user = self.state.users.get(userid)
            token = user.tokens.get(tokenid) if user else None
            if user is None or token is None or not secrets.compare_digest(token.secret, secret):
                raise unauthorized("Authentication failed!")
            if token.expire and token.expire < time.time():
                raise unauthorized(f"token '{tokenid}' access expired")
            self._check_user(userid)
        return Identity(userid, tokenid)

    def _check_user(self, userid: str) -> None:
        with self.state.lock:
            user = self.state.users.get(userid)
            if user is None or not user.enable:
                raise unauthorized(f"user '{userid}' is disabled" if user else "authentication failure")
            if user.expire and user.expire < time.time():
                raise unauthorized(f"account expired for user '{userid}'")

    def _verify_ticket(self, ticket: str) -> _Ticket | None:
        with self._guard:
            info = self._tickets.get(ticket)
        if info is None or time.time() - info.issued > TICKET_LIFETIME:
            return None
        return info

    def login(self, username: str, password: str, realm: str | None = None) -> dict[str, object]:
        """POST /access/ticket: a password, or a still-valid ticket (proxmoxer renews that way)."""
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        renewed = self._verify_ticket(password)
        with self.state.lock:
            user = self.state.users.get(username)
            ok = (
                user is not None
                and user.enable
                and (
                    (renewed is not None and renewed.userid == username)
                    or (user.password is not None and secrets.compare_digest(user.password, password))
                )
            )
        if not ok:
            raise unauthorized("authentication failure")
        now = time.time()
        stamp = f"{int(now):08X}"
        signature = base64.b64encode(secrets.token_bytes(48)).decode()
        ticket = f"PVE:{username}:{stamp}::{signature}"
        csrf = f"{stamp}:{base64.b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"
        with self._guard:
            self._tickets[ticket] = _Ticket(username, csrf, now)
        return {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf, "cap": {}}


def _cookie(header: str, name: str) -> str | None:
    # Parsed by hand: tickets carry ':', '=', '+' and '/', which cookie parsers treat inconsistently.
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return unquote(value.strip().strip('"'))
    return None
