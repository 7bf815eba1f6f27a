"""The Proxmox backend's design decisions that need no cluster: names, access mapping, firewall rules, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import EXAMPLE, example_data, example_with_access_networks, proxmox_backend, run_cli, write_site

from provisioner.backends.proxmox import access, firewall
from provisioner.backends.proxmox.client import PveError, _transient, token_secret
from provisioner.backends.proxmox.names import Names, parse_tags
from provisioner.errors import ExitCode, InputError
from provisioner.site.load import load_site
from provisioner.site.model import ProxmoxSettings

SDN_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*[a-zA-Z0-9]$")  # Proxmox: 2-8 characters
SECURITY_GROUP = re.compile(r"^[A-Za-z][A-Za-z0-9\-_]+$")  # Proxmox: 2-18 characters


def proxmox_data(port: int = 8006, **backend: object) -> dict:
    data = example_data()
    data["site"] = "pvdesign"
    data["management"]["vlan"] = 5
    data["backend"] = proxmox_backend("127.0.0.1", port, **backend)
    return data


@pytest.fixture
def site(tmp_path: Path):
    return load_site(write_site(tmp_path / "pvdesign", proxmox_data()))


def test_names_fit_proxmox_formats(site):
    names = Names(site.model)
    assert SDN_ID.match(names.zone) and 2 <= len(names.zone) <= 8
    vnets = [names.vnet(k) for k in ("mgmt", "dev", "test", "prod")]
    assert len(set(vnets)) == 4
    for vnet in vnets:
        assert SDN_ID.match(vnet) and 2 <= len(vnet) <= 8, vnet
    for env in ("dev", "test", "prod"):
        group = names.security_group(env)
        assert SECURITY_GROUP.match(group) and 2 <= len(group) <= 18
    assert names.machine_of(names.vm_name("dev-app1")) == "dev-app1"
    assert names.machine_of("othersite-dev-app1") is None
    assert parse_tags("env-dev;site-x;ready") == {"env-dev", "site-x", "ready"}


def test_two_sites_get_different_zones_and_vnets(tmp_path: Path):
    other = proxmox_data()
    other["site"] = "pvother"
    a = Names(load_site(write_site(tmp_path / "a", proxmox_data())).model)
    b = Names(load_site(write_site(tmp_path / "b", other)).model)
    assert a.zone != b.zone
    assert a.vnet("dev") != b.vnet("dev")


def test_access_design_gives_developers_nothing_on_production(site):
    names = Names(site.model)
    design = access.design(site.model, names)
    developers = names.group("developer")
    prod_pool = f"/pool/{names.pool('prod')}"
    dev_pool = f"/pool/{names.pool('dev')}"
    assert not [a for a in design.acls if a.ugid == developers and (a.path == prod_pool or "prod" in a.path)]
    assert access.Acl(dev_pool, "PVEVMUser", "group", developers) in design.acls
    assert access.Acl(f"/sdn/zones/{names.zone}/{names.vnet('dev')}", "PVESDNUser", "group", developers) in design.acls
    assert access.Acl(prod_pool, "PVEVMUser", "group", names.group("admin")) in design.acls
    assert design.users["alice@pve"] == {developers}


def test_effective_roles_follow_proxmox_inheritance():
    acls = [
        {"path": "/", "roleid": "PVEAuditor", "type": "group", "ugid": "ops", "propagate": 1},
        {"path": "/pool/p", "roleid": "PVEVMUser", "type": "group", "ugid": "devs", "propagate": 1},
        {"path": "/pool/q", "roleid": "PVEVMAdmin", "type": "group", "ugid": "devs", "propagate": 0},
        {"path": "/pool/p", "roleid": "NoAccess", "type": "user", "ugid": "bob@pve", "propagate": 1},
    ]
    assert access.effective_roles(acls, "alice@pve", {"devs"}, "/pool/p") == {"PVEVMUser": "/pool/p"}
    assert access.effective_roles(acls, "alice@pve", {"devs"}, "/pool/q/x") == {}  # not propagated
    assert access.effective_roles(acls, "alice@pve", {"devs", "ops"}, "/vms/100") == {"PVEAuditor": "/"}
    assert access.effective_roles(acls, "bob@pve", {"devs"}, "/pool/p") == {}  # own NoAccess beats the group


def test_security_groups_mirror_the_gateway_policy(site):
    rules = firewall.rules_for(site.model, "test")
    sources = [(r.source, r.proto, r.dport) for r in rules]
    assert ("10.90.20.0/24", None, None) in sources
    assert ("10.90.0.0/24", "tcp", "22") in sources
    flow = [r for r in rules if r.comment.startswith("flow dev")]
    assert flow and flow[0].source == "10.90.10.0/24" and flow[0].dport == "80" and flow[0].dest == "10.90.20.11"
    prod = firewall.rules_for(site.model, "prod")
    assert not [r for r in prod if r.source in ("10.90.10.0/24", "10.90.20.0/24")], "nothing from dev/test into prod"
    assert all(r.params()["enable"] == 1 for r in rules), "Proxmox leaves rules disabled unless enable=1 is sent"


def test_security_groups_let_ssh_in_from_the_access_networks_that_reach_the_environment(tmp_path: Path):
    model = load_site(write_site(tmp_path / "s", example_with_access_networks())).model
    ssh = {
        env: {r.source for r in firewall.rules_for(model, env) if r.comment.startswith("SSH from access network")}
        for env in ("dev", "test", "prod")
    }
    assert ssh == {"dev": {"10.90.50.0/24", "10.90.60.0/28"}, "test": {"10.90.50.0/24", "10.90.60.0/28"},
                   "prod": {"10.90.60.0/28"}}  # fmt: skip
    for rule in firewall.rules_for(model, "prod"):
        assert rule.source != "10.90.50.0/24", "the developers' office never into production"
        if rule.source == "10.90.60.0/28":
            assert (rule.proto, rule.dport) == ("tcp", "22"), "SSH only"
    example = load_site(EXAMPLE).model
    assert not [r for r in firewall.rules_for(example, "dev") if "access network" in r.comment], (
        "a site without access networks keeps the security groups (and their digests) it had"
    )


def test_transient_errors_are_told_apart_from_facts():
    assert _transient(PveError("x", 500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"))
    assert _transient(PveError("x", 500, "VM is locked (clone)"))
    assert _transient(PveError("x", None))  # connection refused, timeouts
    assert not _transient(PveError("x", 500, "unable to create VM 100: config file already exists"))
    assert not _transient(PveError("x", 500, "Configuration file 'nodes/pve1/qemu-server/1.conf' does not exist"))
    assert not _transient(PveError("x", 400, "Parameter verification failed."))
    assert not _transient(PveError("x", 403, "Permission check failed (/vms/100, VM.Allocate)"))


def test_token_file_must_be_private(tmp_path: Path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("0b7c6a4e-secret\n")
    secret.chmod(0o644)
    settings = ProxmoxSettings.model_validate(proxmox_data(token={"id": "root@pam!p", "file": str(secret)})["backend"])
    with pytest.raises(InputError, match=r"mode 0644.*0600"):
        token_secret(settings, tmp_path)
    secret.chmod(0o600)
    assert token_secret(settings, tmp_path) == "0b7c6a4e-secret"
    monkeypatch.delenv("PROVISION_PVE_TOKEN", raising=False)
    from_env = ProxmoxSettings.model_validate(proxmox_data()["backend"])
    with pytest.raises(InputError, match="PROVISION_PVE_TOKEN"):
        token_secret(from_env, tmp_path)
    assert InputError.exit_code == ExitCode.INVALID


def test_site_file_needs_a_management_vlan_for_proxmox(tmp_path: Path):
    data = proxmox_data()
    del data["management"]["vlan"]
    result = run_cli("validate", str(write_site(tmp_path / "novlan", data)))
    assert result.rc == 2
    assert "management.vlan" in result.stderr + result.stdout


def test_plan_without_token_is_refused_before_anything(tmp_path: Path):
    path = write_site(tmp_path / "notoken", proxmox_data(port=1))
    result = run_cli("plan", str(path), env={"PROVISION_PVE_TOKEN": ""})
    assert result.rc == 2, result.stderr
    assert "PROVISION_PVE_TOKEN" in result.stderr
