"""Running a playbook of the community Proxmox modules against a fake, and reading back what each task did."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvefake import FakePve

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
TOKEN = ("root@pam", "peer")


@dataclass(frozen=True)
class TaskResult:
    name: str
    changed: bool
    failed: bool
    skipped: bool
    msg: str

    def __str__(self) -> str:
        state = "FAILED" if self.failed else "changed" if self.changed else "skipped" if self.skipped else "ok"
        return f"{self.name}: {state}" + (f" ({self.msg})" if self.msg else "")


class PlaybookFailed(AssertionError):
    pass


def environment(fake: FakePve, secret: str, home: Path) -> dict[str, str]:
    """The modules take the API from PROXMOX_* (their documented fallbacks), so the playbooks name no secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PROXMOX_"))}
    env.update(
        PROXMOX_HOST=fake.host,
        PROXMOX_PORT=str(fake.port),
        PROXMOX_USER=TOKEN[0],
        PROXMOX_TOKEN_ID=TOKEN[1],
        PROXMOX_TOKEN_SECRET=secret,
        PROXMOX_VALIDATE_CERTS="false",
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_COLLECTIONS_PATH=str(home / "collections"),  # only the ones bundled with the ansible package
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_DEPRECATION_WARNINGS="false",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    return env


def run_playbook(venv: Path, playbook: str, fake: FakePve, secret: str, home: Path) -> list[TaskResult]:
    """Every task's result, in order; raises PlaybookFailed (with each task's outcome) when one failed."""
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOKS / playbook)],
        cwd=home,
        env=environment(fake, secret, home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        report = json.loads(done.stdout[done.stdout.index("{") :])
    except ValueError as exc:
        raise PlaybookFailed(
            f"{playbook}: no JSON report (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from exc
    results = [_result(task) for play in report["plays"] for task in play["tasks"]]
    if done.returncode != 0 or any(r.failed for r in results):
        lines = "\n".join(map(str, results))
        raise PlaybookFailed(f"{playbook} failed (rc {done.returncode}):\n{lines}\n{done.stderr[-2000:]}")
    return results


def _result(task: dict[str, Any]) -> TaskResult:
    outcome = task["hosts"].get("localhost", {})
    msg = outcome.get("msg", "")
    return TaskResult(
        name=task["task"]["name"],
        changed=bool(outcome.get("changed")),
        failed=bool(outcome.get("failed")),
        skipped=bool(outcome.get("skipped")),
        msg=msg if isinstance(msg, str) else json.dumps(msg),
    )
