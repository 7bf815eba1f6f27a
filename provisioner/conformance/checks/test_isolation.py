"""HYP-1: root on a development host cannot act on the hypervisor.

Read from the hypervisor's side (the container's user-id mapping and seccomp filter, or a full virtual machine with
nothing of the host handed in), and, where the host shares the hypervisor's kernel, attempted from inside as root:
each known way out must be refused for the right reason. The inside attempts alone would not do (the host's root
decides what they print); the hypervisor's side alone would not show that the boundary holds.
"""

from __future__ import annotations

import json

import pytest

from provisioner.backends import backend_for
from provisioner.conformance import escape_probe


@pytest.fixture(scope="module")
def isolation(lab):
    backend = backend_for(lab.site, lab.state)
    return backend.isolation([h.name for h in lab.rooted_hosts()])


@pytest.mark.control("HYP-1")
def test_root_on_a_development_host_cannot_act_on_the_hypervisor(lab, evidence, isolation, rooted_host_name):
    host = lab.host(rooted_host_name)
    seen = isolation[rooted_host_name]
    evidence.expect(
        "read at the hypervisor: root inside maps to an unprivileged host uid under a seccomp filter, or the host "
        "is a virtual machine with nothing of the hypervisor's handed in; tried as root inside a container: a "
        "writable core_pattern or modprobe (booted and fresh /proc), a read-write sysfs, a cgroup release_agent, "
        "the hypervisor's disk as a block device, a kernel module: each refused by the kernel"
    )
    for fact in seen.facts:
        evidence.note(f"hypervisor: {fact}")
    problems = [f"hypervisor: {p}" for p in seen.problems]
    if seen.shares_kernel:
        result = lab.remote.run_as_root(str(host.address), f"python3 -c {_quoted(escape_probe.SCRIPT)}")
        assert result.ok, f"the attempts could not run as root on {rooted_host_name}: {result.stderr.strip()[-300:]}"
        verdicts = escape_probe.judge(json.loads(result.stdout))
        assert verdicts, "no attempt reported: nothing proven"
        for v in verdicts:
            evidence.row(host=rooted_host_name, primitive=v.primitive, target=v.target, outcome=v.outcome,
                         refused=v.refused, meaning=v.meaning)  # fmt: skip
            if not v.refused:
                problems.append(f"{v.target}: {v.outcome} ({v.meaning})")
        evidence.observe(
            f"{sum(v.refused for v in verdicts)} of {len(verdicts)} attempts refused; "
            + ("; ".join(problems) or "hypervisor side as designed")
        )
    else:
        evidence.observe("a virtual machine: its root has its own kernel; " + ("; ".join(problems) or "nothing shared"))
    assert not problems, "; ".join(problems)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
