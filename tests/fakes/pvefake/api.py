"""Request pipeline: the order of checks follows pve-http-server / PVE::HTTPServer.

1. authenticate (401, optionally delayed like PVE's 3 s),
2. route lookup against the schema (501 `Method 'GET /x' not implemented`),
3. fault injection (500 `fake: injected failure`, before any effect),
4. merge URI parameters with query/body (400 on conflicting values),
5. API tokens refused on `allowtoken: 0` ops, then the op's permission expression (403),
6. `node` must be this node (500),
7. parameter verification against the schema (400 `Parameter verification failed.`),
8. the stateful handler (501 if the fake does not implement the op).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .auth import Authenticator, Identity
from .errors import ApiError, die, not_implemented, param_error
from .faults import INJECTED_FAILURE, Faults
from .permissions import Permissions
from .realize import Realizer
from .recorder import RecordedRequest, Recorder
from .schema import RouteTable, Schema, split_path
from .state import State
from .tasks import TaskManager

log = logging.getLogger(__name__)

API_PREFIX = "/api2/json"
PUBLIC_ROUTES = {("POST", "/access/ticket"), ("GET", "/access/ticket")}


@dataclass
class Request:
    method: str
    path: str
    template: str
    params: dict[str, Any]
    who: Identity


@dataclass
class Response:
    status: int
    reason: str
    body: dict[str, Any] | None  # None: empty body (401)


Handler = Callable[["Api", Request], Any]


@dataclass(frozen=True)
class Route:
    handler: Handler
    locked: bool  # run under the state lock (False for handlers that call the realizer)


class Routes:
    """Handler registry filled by the route modules through the `add` decorator."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], Route] = {}

    def add(self, method: str, template: str, *, locked: bool = True) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.table[(method, template)] = Route(fn, locked)
            return fn

        return register


class Api:
    def __init__(
        self,
        state: State,
        schema: Schema | None,
        faults: Faults,
        realizer: Realizer,
        recorder: Recorder,
        task_seconds: float,
        routes: dict[tuple[str, str], Route],
    ) -> None:
        self.state = state
        self.schema = schema
        self.faults = faults
        self.realizer = realizer
        self.recorder = recorder
        self.tasks = TaskManager(state.node, faults, task_seconds, state.tasks)
        self.perms = Permissions(state)
        self.auth = Authenticator(state)
        self.routes = routes
        self.ha_seconds = 0.5  # how long after a request the HA manager acts on it (pvefake.ha)
        self.rng = random.Random(faults.seed + 7)  # MAC addresses, UUIDs: reproducible per seed
        self._own_table = RouteTable([t for _, t in routes])

    # -- entry point -----------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, query: str, body: bytes, headers: dict[str, str]) -> Response:
        started = time.monotonic()
        path = raw_path[len(API_PREFIX) :] if raw_path.startswith(API_PREFIX) else raw_path
        path = path.rstrip("/") or "/"
        template: str | None = None
        params: dict[str, Any] = {}
        try:
            params = _collect_params(query, body, headers.get("content-type", ""))
            template, path_params = self._route(method, path)
            params, conflicts = _merge_uri(params, path_params)
            response = self._dispatch(method, path, template, params, conflicts, headers)
        except ApiError as exc:
            response = error_response(exc)
        except Exception as exc:  # a bug in the fake: answer like a Perl die, keep the traceback in the log
            log.exception("pvefake handler crashed on %s %s", method, path)
            response = error_response(die(f"fake internal error: {exc}"))
        if response.status == 401 and self.faults.auth_delay > 0:
            time.sleep(self.faults.auth_delay)
        self.recorder.record(
            RecordedRequest(
                method, path, template or "", params, response.status, response.reason, time.monotonic() - started
            )
        )
        return response

    def _route(self, method: str, path: str) -> tuple[str | None, dict[str, str]]:
        segments = split_path(path)
        found = self.schema.routes.match(segments) if self.schema else self._own_table.match(segments)
        if found is None:
            return None, {}
        return found.template, found.params

    def _dispatch(
        self,
        method: str,
        path: str,
        template: str | None,
        params: dict[str, Any],
        conflicts: dict[str, str],
        headers: dict[str, str],
    ) -> Response:
        public = template is not None and (method, template) in PUBLIC_ROUTES
        who = Identity("@anonymous") if public else self.auth.authenticate(method, headers)
        op = self.schema.operation(method, template) if (self.schema and template) else None
        if template is None or (self.schema is not None and op is None):
            raise not_implemented(method, path)
        if method in self.faults.error_methods and self.faults.roll(self.faults.error_rate):
            raise die(INJECTED_FAILURE)
        if conflicts:
            raise param_error(conflicts)
        if op is not None:
            if who.tokenid and not op.get("allowtoken", 1):
                raise ApiError(403, f"URI '{path}' not available with API token, need proper ticket.")
            if not public:
                self.perms.check_api(who, op.get("permissions"), params)
        node = params.get("node") if "{node}" in template else None
        if node is not None:
            self._check_node(method, path, template, str(node), params)
        if self.schema is not None and op is not None:
            params = self.schema.normalize(op, params)
            errors = self.schema.check(method, template, params)
            if errors:
                raise param_error(errors)
        route = self.routes.get((method, template))
        if route is None:
            raise not_implemented(method, path)
        request = Request(method, path, template, _perl_scalars(params), who)
        if route.locked:
            with self.state.lock:
                data = route.handler(self, request)
        else:
            data = route.handler(self, request)
        return Response(200, "OK", {"data": data})

    def _check_node(self, method: str, path: str, template: str, node: str, params: dict[str, Any]) -> None:
        """pveproxy hands a `/nodes/{node}` call to that node: an unknown name is refused, an offline member does
        not answer (595), and the guest must be on that node (its config file lives under nodes/<node>/)."""
        if node != self.state.node:
            status = self.state.other_nodes.get(node)
            if status is None:
                raise die(f"no such cluster node '{node}'")
            if status != "online":
                raise ApiError(595, "No route to host")
            if (method, template) not in OTHER_NODE_ROUTES and not template.startswith(OTHER_NODE_PREFIXES):
                raise ApiError(
                    501,
                    f"Method '{method} {path}' not implemented (pvefake serves only reads of another node's "
                    "network and guests, and calls on the QEMU guests on it)",
                )
        for prefix, guests, folder in (
            ("/nodes/{node}/qemu/{vmid}", self.state.vms, "qemu-server"),
            ("/nodes/{node}/lxc/{vmid}", self.state.containers, "lxc"),
        ):
            if not template.startswith(prefix) or params.get("vmid") is None:
                continue
            try:
                guest = guests.get(int(params["vmid"]))
            except ValueError:
                return  # not an id: parameter verification answers
            elsewhere = guest is not None and self.state.node_of(guest) != node
            if elsewhere or (guest is None and node != self.state.node):
                raise die(f"Configuration file 'nodes/{node}/{folder}/{params['vmid']}.conf' does not exist")


# What a member other than the fake's own node answers: the reads of its network, its SDN status and its guests,
# everything done to a QEMU guest that is on it (a migrated VM is configured, started, stopped, destroyed there),
# and its tasks.
OTHER_NODE_PREFIXES = ("/nodes/{node}/qemu/{vmid}", "/nodes/{node}/tasks/{upid}")
OTHER_NODE_ROUTES = frozenset(
    ("GET", t)
    for t in (
        "/nodes/{node}",
        "/nodes/{node}/network",
        "/nodes/{node}/qemu",
        "/nodes/{node}/qemu/{vmid}",
        "/nodes/{node}/qemu/{vmid}/config",
        "/nodes/{node}/lxc",
        "/nodes/{node}/lxc/{vmid}",
        "/nodes/{node}/lxc/{vmid}/config",
        "/nodes/{node}/sdn/zones",
        "/nodes/{node}/sdn/zones/{zone}/content",
    )
)


def error_response(exc: ApiError) -> Response:
    message = exc.message if exc.message.endswith("\n") else exc.message + "\n"
    reason = reason_phrase(exc.message)
    if exc.status == 401:
        return Response(401, reason, None)
    body: dict[str, Any] = {"data": None, "message": message}
    if exc.errors is not None:
        body["errors"] = exc.errors
    return Response(exc.status, reason, body)


def reason_phrase(message: str) -> str:
    """First line of the die text, made safe for an HTTP status line (latin-1, no control chars)."""
    first = message.strip("\n").split("\n", 1)[0]
    first = "".join(ch if ch.isprintable() else " " for ch in first)
    return first.encode("latin-1", "replace").decode("latin-1") or "Error"


def _collect_params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    pairs = parse_qsl(query, keep_blank_values=True)
    if body:
        if content_type.split(";")[0].strip().lower() == "application/json":
            try:
                decoded = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ApiError(400, f"unable to parse JSON body - {exc}") from exc
            if not isinstance(decoded, dict):
                raise ApiError(400, "JSON body must be an object")
            pairs += [(k, _json_value(v)) for k, v in decoded.items()]
        else:
            pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    for key, value in pairs:
        if key in params:  # repeated keys become arrays, as pve-http-server does
            current = params[key]
            params[key] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            params[key] = value
    return params


def _perl_scalars(params: dict[str, Any]) -> dict[str, Any]:
    """After verification a JSON true/false is just 1/0 to the handlers, as in Perl."""

    def one(value: Any) -> Any:
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return {k: one(v) for k, v in params.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, bool | list | dict) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _merge_uri(params: dict[str, Any], path_params: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """URI parameters win; a body/query value that differs is an error (PVE 8.x/9.x wording)."""
    merged = dict(params)
    errors: dict[str, str] = {}
    for key, value in path_params.items():
        if key in merged and str(merged[key]) != value:
            errors[key] = "duplicate parameter (already defined in URI) with conflicting values!"
        merged[key] = value
    return merged, errors
