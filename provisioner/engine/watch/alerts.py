"""Alerts: a control turning from pass to fail (or first seen failing) opens a failure window and queues one
"failed" event; its next pass (or waiver) closes the window and queues one "recovered" event. Events are delivered
in order to the controller's notification command; one that is not delivered (non-zero exit, timeout, no such
program) stays queued and is tried again at the next tick, so each event is delivered once.

"waived" is not a failure; a control a run did not cover ("skip" or absent) keeps its state.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioner.conformance.controls import CONTROLS
from provisioner.controller.scheduler import SERVICE_PATH
from provisioner.engine.watch.folder import ALERTS_FILE, WatchFolder, iso

MESSAGE_LIMIT = 500
CHECKS_LIMIT = 50


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    detail: str  # "exit 0", "exit 3", "timed out after 30s", "cannot start: ..."


# argv, the JSON document on stdin, the environment, the timeout in seconds
Notifier = Callable[[list[str], str, dict[str, str], float], Delivery]


def run_notify(argv: list[str], document: str, env: dict[str, str], timeout: float) -> Delivery:
    """The notification command, without a shell; its output is not kept (it is the command's own business)."""
    try:
        proc = subprocess.run(
            argv, input=document, env=env, timeout=timeout, capture_output=True, text=True, check=False
        )
    except subprocess.TimeoutExpired:
        return Delivery(False, f"timed out after {timeout:g}s")
    except OSError as exc:
        return Delivery(False, f"cannot start {argv[0]}: {exc.strerror or exc}")
    return Delivery(proc.returncode == 0, f"exit {proc.returncode}")


def notify_environment(event: dict[str, Any]) -> dict[str, str]:
    """A clean environment: nothing of the tick's own (which may hold a Proxmox token) is passed on."""
    return {
        "PATH": SERVICE_PATH,
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "PROVISION_EVENT": str(event["event"]),
        "PROVISION_CONTROL": str(event["control"]),
        "PROVISION_SITE": str(event["site"]),
    }


def _message(row: dict[str, Any]) -> str:
    evidence = str(row.get("evidence") or "").strip().splitlines()
    return (evidence[-1] if evidence else str(row.get("observed") or ""))[:MESSAGE_LIMIT]


def failing_checks(rows: list[dict[str, Any]], control: str) -> list[dict[str, str]]:
    return [
        {"check": str(r.get("check", "")), "host": str(r.get("host", "")), "message": _message(r)}
        for r in rows
        if r.get("control") == control and r.get("status") == "fail"
    ][:CHECKS_LIMIT]


class AlertBook:
    """The alert state of one site's watcher (alerts.json in the watcher's folder)."""

    def __init__(self, folder: WatchFolder):
        self.folder = folder
        data = folder.read(ALERTS_FILE)
        self.controls: dict[str, dict[str, Any]] = dict(data.get("controls") or {})
        self.pending: list[dict[str, Any]] = list(data.get("pending") or [])
        self.last: dict[str, Any] | None = data.get("last")
        self.delivered = int(data.get("delivered") or 0)

    def save(self) -> None:
        self.folder.write(
            ALERTS_FILE,
            {"controls": self.controls, "pending": self.pending, "last": self.last, "delivered": self.delivered},
        )

    def open_windows(self) -> dict[str, dict[str, Any]]:
        """control -> its open failure window (start, run)."""
        return {cid: state["window"] for cid, state in self.controls.items() if state.get("window")}

    def observe(
        self,
        *,
        site: str,
        schedule: str,
        verdicts: dict[str, str],
        rows: list[dict[str, Any]],
        run_dir: str,
        now: dt.datetime,
        queue: bool = True,
    ) -> list[dict[str, Any]]:
        """Take one run's verdicts; the events it causes (queued for delivery when `queue`)."""
        events = []
        for cid, verdict in verdicts.items():
            if verdict not in ("pass", "fail", "waived"):
                continue  # not verified by this run: the control keeps its state
            state = self.controls.setdefault(cid, {"window": None})
            window = state.get("window")
            state.update(verdict=verdict, seen=iso(now), run=run_dir)
            if verdict == "fail" and not window:
                state["window"] = {"start": iso(now), "run": run_dir}
                events.append(self._event(site, schedule, "failed", cid, verdict, rows, run_dir, iso(now), None, now))
            elif verdict != "fail" and window:
                state["window"] = None
                events.append(
                    self._event(site, schedule, "recovered", cid, verdict, [], run_dir, window["start"], iso(now), now)
                )
        if queue:
            self.pending.extend(events)
        self.save()
        return events

    @staticmethod
    def _event(
        site: str,
        schedule: str,
        kind: str,
        control: str,
        verdict: str,
        rows: list[dict[str, Any]],
        run_dir: str,
        start: str,
        end: str | None,
        now: dt.datetime,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "site": site,
            "event": kind,
            "control": control,
            "title": CONTROLS[control].title if control in CONTROLS else "",
            "verdict": verdict,
            "checks": failing_checks(rows, control),
            "run": run_dir,
            "schedule": schedule,
            "window_start": start,
            "time": iso(now),
        }
        if end is not None:
            event["window_end"] = end
        return event

    def deliver(
        self, argv: list[str] | None, timeout: float, now: dt.datetime, notifier: Notifier = run_notify
    ) -> list[Delivery]:
        """Deliver the queued events in order; the first that fails stops the round and stays queued."""
        results = []
        while argv and self.pending:
            event = self.pending[0]
            document = {k: v for k, v in event.items() if k != "attempts"}
            result = notifier(argv, json.dumps(document, indent=1) + "\n", notify_environment(event), timeout)
            results.append(result)
            attempts = int(event.get("attempts", 0)) + 1
            self.last = {
                "event": event["event"],
                "control": event["control"],
                "window_start": event["window_start"],
                "time": iso(now),
                "delivered": result.delivered,
                "detail": result.detail,
                "attempts": attempts,
            }
            if not result.delivered:
                event["attempts"] = attempts
                break
            self.pending.pop(0)
            self.delivered += 1
        self.save()
        return results
