"""ACC-6: rights at the hypervisor, read back from it (Proxmox ACLs and groups), never copied from the site file."""

from __future__ import annotations

import pytest

from provisioner.site import policy


@pytest.fixture(scope="module")
def hypervisor_rows(lab):
    rows = lab.hypervisor_access()
    if rows is None:
        pytest.skip(
            f"the {lab.model.backend.type} backend gives people no hypervisor accounts (only root on the host "
            "manages it); ACC-6 is read back from Proxmox ACLs"
        )
    return rows


@pytest.mark.control("ACC-6")
def test_nobody_holds_hypervisor_rights_beyond_their_access(lab, evidence, hypervisor_rows):
    evidence.expect("no role at the hypervisor on an environment where the person's access level is none")
    offenders = []
    for row in hypervisor_rows:
        person = lab.model.person(row["person"])
        env = lab.model.environment(row["environment"])
        level = policy.access_level(lab.model, person, env)
        evidence.row(person=row["person"], environment=row["environment"], level=level, hypervisor_roles=row["roles"])
        if level == "none" and row["roles"]:
            held = ", ".join(row["roles"])
            offenders.append(f"{row['userid']} holds {held} on {row['environment']}: {row['evidence']}")
    evidence.observe(f"{len(hypervisor_rows)} person x environment pairs read back; {len(offenders)} beyond access")
    assert not offenders, "; ".join(offenders)


@pytest.mark.control("ACC-6")
def test_developers_hold_nothing_on_production_but_work_in_development(lab, evidence, hypervisor_rows):
    """The negative half alone could pass on an empty read; the positive half proves the read sees grants."""
    developers = {p.name for p in lab.people("developer")}
    if not developers:
        pytest.skip("the site declares no developers")
    prod = [r for r in hypervisor_rows if r["person"] in developers and r["tier"] == "production"]
    dev = [r for r in hypervisor_rows if r["person"] in developers and r["tier"] == "development"]
    evidence.expect("developers: no role on production pools, VMs and VNets; VM user rights in development")
    evidence.observe(
        "; ".join(f"{r['person']}@{r['environment']}: {', '.join(r['roles']) or 'nothing'}" for r in prod + dev)
    )
    missing_users = sorted({r["userid"] for r in prod + dev if not r["user_exists"]})
    assert not missing_users, f"hypervisor users not found: {missing_users}"
    assert all(r["roles"] for r in dev), "developers hold no rights in development: the ACL read-back sees nothing"
    holders = [f"{r['person']} holds {', '.join(r['roles'])} on {r['environment']}" for r in prod if r["roles"]]
    assert not holders, "; ".join(holders)
