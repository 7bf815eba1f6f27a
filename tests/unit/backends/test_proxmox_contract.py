"""The contract: every request the Proxmox backend sent during the session is valid for Proxmox VE 9.1 and 8.4,
checked against the official API schemas (../shared/pve-api/)."""

from __future__ import annotations

import collections

import pytest
from pvecontract import recorded
from pvefake.schema import Schema, schema_dir

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("version", ["9.1", "8.4"])
def test_every_request_the_backend_sent_is_valid_for(version):
    if schema_dir() is None:
        pytest.skip("the official Proxmox API schemas (../shared/pve-api/) are not beside the project")
    requests = recorded()
    if not requests:
        pytest.skip("no Proxmox backend test ran in this session (select them to check the contract)")
    schema = Schema.load(version)
    problems = collections.Counter()
    for request in requests:
        for error in schema.validate(request["method"], request["path"], request["params"]):
            problems[f"{request['method']} {request['path']}: {error}"] += 1
    routes = {(r["method"], schema.route(r["method"], r["path"])) for r in requests}
    assert len(routes) >= 25, f"only {len(routes)} routes recorded: the backend tests did not run through"
    assert not problems, "\n".join(f"{count}x {problem}" for problem, count in problems.most_common(30))
