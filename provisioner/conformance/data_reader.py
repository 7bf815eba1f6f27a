"""DATA-1 and DATA-2 read the databases outside production from the controller's probe on their segment.

A developer is root on the development hosts: whatever runs there (psql, sudo, ssh's shell) prints what they
want. So verify does not ask the host: it logs in over the wire from the controller's probe point, as the
read-only role `provisioner_reader` (pg_read_all_data; pg_hba.conf admits it from the probe's address only), with
the standard-library client that ACC-3 uses, and reads the tables itself. The login counts only when the server
proved it holds the role's SCRAM verifier; anything else, a refusal or silence, is an error, never a clean scan.

What root on the host can still do is change the server itself; this reading takes away the cheap lie (a tool
that prints "no rows"), and the report says how each database was read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from provisioner.backends.network.probe_point import ProbePoint
from provisioner.conformance.database_login import DATABASE, DB_PORT
from provisioner.errors import ProvisionError
from provisioner.personal_data.database import Answer, QueriedDatabase
from provisioner.remote import pg_login
from provisioner.site import policy
from provisioner.site.model import Environment, Host
from provisioner.workspace.secrets import database_password_name

READ_TIMEOUT = 300.0


def reader_password(secrets_dir: Path, env: Environment) -> str:
    """The reader's password for an environment (made by apply; missing means the site was not applied)."""
    path = secrets_dir / database_password_name(policy.DATA_READER_ROLE, env.name)
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ProvisionError(f"no reader password for {env.name} ({path}): apply the site first") from exc


def from_probe(point: ProbePoint, password: str) -> Callable[[Host], QueriedDatabase]:
    """For each database host on the point's segment, a reader that asks from the probe (inside `point.attached()`)."""

    def reader(host: Host) -> QueriedDatabase:
        def ask(queries: list[str]) -> list[Answer]:
            return _ask(point, host, password, queries)

        return QueriedDatabase(
            host, ask, f"over the wire from the controller's probe at {point.address.ip}, as {policy.DATA_READER_ROLE}"
        )

    return reader


def _ask(point: ProbePoint, host: Host, password: str, queries: list[str]) -> list[Answer]:
    request = pg_login.request(str(host.address), DB_PORT, policy.DATA_READER_ROLE, DATABASE, 3, queries)
    ran = point.python(pg_login.script(), request, input_text=password + "\n", timeout=READ_TIMEOUT)
    if ran.returncode != 0:
        raise ProvisionError(f"the controller's reading of {host.name} failed in the probe (exit {ran.returncode})")
    try:
        result = pg_login.parse(json.loads(ran.stdout))
    except (ValueError, KeyError) as exc:
        raise ProvisionError(f"the controller's reading of {host.name} gave no answer it can read") from exc
    if result.outcome != "logged-in":
        why = {
            "server-refused": f"the server refused the reader (SQLSTATE {result.sqlstate})",
            "icmp": f"{result.icmp} from {result.sender}",
            "no-answer": f"no answer after {result.tries} tries",
        }.get(result.outcome, result.detail)
        raise ProvisionError(f"the controller's reader could not log in to {host.name} from its probe: {why}")
    if not result.server_proved or len(result.answers) != len(queries):
        after = f" (SQLSTATE {result.sqlstate})" if result.sqlstate else ""
        raise ProvisionError(f"the database on {host.name} ended the controller's reading early{after}")
    return [Answer(rows=a.rows, sqlstate=a.sqlstate) for a in result.answers]
