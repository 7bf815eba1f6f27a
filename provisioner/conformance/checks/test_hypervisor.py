"""What the hypervisor itself enforces, read back from it, never copied from the site file: ACC-6, the rights
of people at the hypervisor (Proxmox ACLs and groups), and NET-3's second wall, its firewall in front of the hosts."""

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


# ---- NET-3's second wall: the hypervisor's own firewall, read back from it ------------------------------------
@pytest.fixture(scope="module")
def hypervisor_firewall(lab):
    reading = lab.hypervisor_firewall
    if reading is None:
        pytest.skip(
            f"the {lab.model.backend.type} backend puts no firewall of its own in front of the hosts; the gateway "
            "and each host's nftables are the walls"
        )
    return reading


@pytest.mark.control("NET-3")
def test_the_hypervisors_firewall_filters_every_nic_of_the_host(lab, evidence, host_name, hypervisor_firewall):
    """A security group configured while the datacenter firewall is off filters nothing: read what is in force."""
    evidence.expect(
        "the datacenter firewall on; the VM's firewall on with inbound DROP; firewall=1 on every NIC; its "
        "environment's security group referenced, holding the site file's rules, and no rule of its own accepting more"
    )
    found = hypervisor_firewall.machines.get(host_name)
    problems = list(hypervisor_firewall.problems)
    problems += [f"{host_name} was not found on the hypervisor"] if found is None else found
    evidence.observe("; ".join(hypervisor_firewall.facts + problems) or "nothing read")
    assert not problems, f"{host_name}: " + "; ".join(problems)
