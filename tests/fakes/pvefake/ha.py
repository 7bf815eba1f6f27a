"""The HA manager (pve-ha-manager): resources (`/cluster/ha/resources`), and the CRM/LRM that carry out what
they request some time after the request was made.

What a client sees, as upstream:
- qemu-server's start/stop/shutdown of an HA-managed VM (configured, state not `ignored`) start a `hastart` /
  `hastop` task that only records the request (`ha-manager set vm:N --state started`, `crm-command stop vm:N
  <timeout>`, which sets the requested state to `stopped`); the task ends OK at once and the VM's status changes
  only when the LRM acts, `fake.api.ha_seconds` later (its own `qmstart`/`qmshutdown`/`qmstop` task, by
  root@pam, on the VM's node). A shutdown request with a timeout is a shutdown forced when the timeout runs out.
- The LRM converges to the requested state at the moment it acts: a stop request overtaken by a start request
  leaves the VM running, untouched.
- A resource in the `error` state refuses every state request but `disabled`.
- `status/current` shows `ha: {managed, state}`; `cluster/resources` shows `hastate`.
"""

from __future__ import annotations

import re
from typing import Any

from .api import Api, Request, Routes
from .common import flag, opt_int, opt_str
from .errors import die
from .state import HaResource
from .tasks import Task

ROUTES = Routes()
REQUESTABLE = ("started", "stopped", "enabled", "disabled", "ignored")


def parse_sid(api: Api, raw: str) -> str:
    """PVE::HA::Config::parse_sid: `100` -> `vm:100` (`ct:100` for a container), `vm:100` as it is."""
    if re.fullmatch(r"\d+", raw):
        vmid = int(raw)
        if vmid in api.state.vms:
            return f"vm:{vmid}"
        if vmid in api.state.containers:
            return f"ct:{vmid}"
        raise die(f"unable to detect SID from VMID - VM/CT {raw} does not exist")
    if re.fullmatch(r"\S+:\S+", raw):
        return raw
    raise die(f"unable to parse service id '{raw}'")


def status_of(api: Api, vmid: int) -> dict[str, Any]:
    """PVE::HA::Config::get_service_status, as `status/current` shows it under `ha`."""
    res = api.state.ha_of(vmid)
    if res is None or not res.managed:
        return {"managed": 0}
    return {"managed": 1, "state": res.crm_state or res.state}


def managed(api: Api, vmid: int) -> bool:
    res = api.state.ha_of(vmid)
    return res is not None and res.managed


def _entry(res: HaResource) -> dict[str, Any]:
    out: dict[str, Any] = {"sid": res.sid, "type": res.sid.split(":", 1)[0], "state": res.state, "digest": "0" * 40}
    if res.comment:
        out["comment"] = res.comment
    for key in ("max_restart", "max_relocate", "failback"):
        if getattr(res, key) is not None:
            out[key] = getattr(res, key)
    return out


def _existing(api: Api, raw: str) -> HaResource:
    sid = parse_sid(api, raw)
    res = api.state.ha.get(sid)
    if res is None:
        raise die(f"no such resource '{sid}'")
    return res


@ROUTES.add("GET", "/cluster/ha/resources")
def list_resources(api: Api, req: Request) -> list[dict[str, Any]]:
    kind = opt_str(req.params, "type")
    return [_entry(r) for _, r in sorted(api.state.ha.items()) if kind in (None, r.sid.split(":", 1)[0])]


@ROUTES.add("GET", "/cluster/ha/resources/{sid}")
def read_resource(api: Api, req: Request) -> dict[str, Any]:
    return _entry(_existing(api, str(req.params["sid"])))


@ROUTES.add("POST", "/cluster/ha/resources")
def create_resource(api: Api, req: Request) -> None:
    sid = parse_sid(api, str(req.params["sid"]))
    kind, _, name = sid.partition(":")
    if req.params.get("type") is not None and req.params["type"] != kind:
        raise die("types does not match")
    if kind == "vm":
        vmid = int(name)
        if vmid not in api.state.vms:
            if vmid in api.state.containers:
                raise die(f"resource 'vm:{vmid}' - guest with ID {vmid} is not a VM")
            raise die(f"resource 'vm:{vmid}' does not exist in cluster")
    if sid in api.state.ha:
        raise die(f"resource ID '{sid}' already defined")
    res = HaResource(sid)
    _set(res, req.params)
    api.state.ha[sid] = res
    schedule(api, res)


@ROUTES.add("PUT", "/cluster/ha/resources/{sid}")
def update_resource(api: Api, req: Request) -> None:
    res = _existing(api, str(req.params["sid"]))
    wanted = opt_str(req.params, "state")
    if res.managed and (res.crm_state == "error") and wanted != "disabled":
        raise die(f"service '{res.sid}' in error state, must be disabled and fixed first")
    for key in [k for k in str(req.params.get("delete") or "").split(",") if k]:
        if key in ("comment",):
            res.comment = ""
        elif key in ("max_restart", "max_relocate", "failback"):
            setattr(res, key, None)
        elif key == "state":
            res.state = "started"
    _set(res, req.params)
    if wanted is not None:
        schedule(api, res)


@ROUTES.add("DELETE", "/cluster/ha/resources/{sid}")
def delete_resource(api: Api, req: Request) -> None:
    sid = parse_sid(api, str(req.params["sid"]))
    if sid not in api.state.ha:
        raise die(f"cannot delete service '{sid}', not HA managed!")
    del api.state.ha[sid]  # the guest stays as it is: nothing manages it any more


def _set(res: HaResource, params: dict[str, Any]) -> None:
    state = opt_str(params, "state")
    if state is not None:
        res.state = "started" if state == "enabled" else state
        if state == "disabled" and res.crm_state == "error":
            res.crm_state = "stopped"
    if params.get("comment") is not None:
        res.comment = str(params["comment"])
    for key in ("max_restart", "max_relocate"):
        if params.get(key) is not None:
            setattr(res, key, opt_int(params, key))
    if params.get("failback") is not None:
        res.failback = 1 if flag(params, "failback") else 0


# -- what qemu-server does for an HA-managed VM --------------------------------------------------------------


def request_start(api: Api, vmid: int, user: str, node: str) -> str:
    """`qm start` of an HA-managed VM: a `hastart` task that sets the requested state; the LRM starts it later."""

    def work(task: Task) -> None:
        task.log(f"Requesting HA start for VM {vmid}")
        with api.state.lock:
            res = api.state.ha_of(vmid)
            if res is None:
                return
            if res.crm_state == "error":
                raise RuntimeError(f"service 'vm:{vmid}' in error state, must be disabled and fixed first")
            res.state = "started"
        schedule(api, res)

    return api.tasks.spawn("hastart", str(vmid), user, work, node=node)


def request_stop(api: Api, vmid: int, user: str, node: str, timeout: int) -> str:
    """`qm stop` (timeout 0) or `qm shutdown` of an HA-managed VM: a `hastop` task that queues `crm-command stop`;
    the CRM sets the requested state to stopped and the LRM shuts the VM down (forced after `timeout`), later."""

    def work(task: Task) -> None:
        task.log(f"Requesting HA stop for VM {vmid}")
        with api.state.lock:
            res = api.state.ha_of(vmid)
            if res is None:
                return
            res.state = "stopped"
            vm = api.state.vms.get(vmid)
            if vm is not None and vm.status == "running" and res.crm_state != "error":
                res.crm_state = "request_stop"
        schedule(api, res, timeout)

    return api.tasks.spawn("hastop", str(vmid), user, work, node=node)


def schedule(api: Api, res: HaResource, timeout: int = 60) -> None:
    """The CRM/LRM round: `api.ha_seconds` later, bring the VM to the state requested *then*."""
    from .qemu import start_worker, stop_worker  # qemu imports this module

    vmid = res.vmid
    vm = api.state.vms.get(vmid)
    if vm is None or not res.managed:
        return
    node = api.state.node_of(vm)
    wanted = "started" if res.state == "started" else "stopped"
    running = vm.status == "running"
    if wanted == "started" and not running:
        start = start_worker(api, vmid, False)

        def do_start(task: Task) -> None:
            with api.state.lock:
                current = api.state.ha_of(vmid)
                target = api.state.vms.get(vmid)
                if current is None or current.state != "started" or target is None or target.status == "running":
                    return
            try:
                start(task)
            except Exception:
                with api.state.lock:
                    current.crm_state = "error"  # upstream: after max_restart and max_relocate tries
                raise
            with api.state.lock:
                current.crm_state = "started"

        api.tasks.spawn("qmstart", str(vmid), "root@pam", do_start, seconds=api.ha_seconds, node=node)
    elif wanted == "stopped" and running:
        stop = stop_worker(api, vmid, True, must_run=False)
        ignores = vmid in api.faults.ignore_shutdown and timeout > 0
        kind = "qmshutdown" if timeout > 0 else "qmstop"

        def do_stop(task: Task) -> None:
            with api.state.lock:
                current = api.state.ha_of(vmid)
                if current is None or current.state == "started":
                    return  # overtaken by a start request: the VM keeps running
            if ignores:
                task.log(f"VM {vmid} did not shut down within {timeout}s, stopping it (forceStop)")
            stop(task)
            with api.state.lock:
                current.crm_state = "stopped"

        seconds = api.ha_seconds + (timeout if ignores else 0)
        api.tasks.spawn(kind, str(vmid), "root@pam", do_stop, seconds=seconds, node=node)
    else:
        res.crm_state = "started" if wanted == "started" else "stopped"
