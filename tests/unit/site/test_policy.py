"""The separation policy derived from the site file: the A.8.31 access matrix and allowed sources."""

from __future__ import annotations

import copy
import ipaddress

from helpers import EXAMPLE, example_data, example_with_access_networks, write_site

from provisioner.site import policy
from provisioner.site.load import load_site


def site():
    return load_site(EXAMPLE).model


def levels(model, env_name):
    return {a["name"]: a["level"] for a in policy.accounts_for(model, model.environment(env_name))}


def test_access_matrix_of_the_example():
    model = site()
    assert levels(model, "dev") == {"alice": "sudo", "bob": "sudo", "dave": "sudo"}
    assert levels(model, "test") == {"alice": "login", "bob": "login", "carol": "login", "dave": "sudo"}
    assert levels(model, "prod") == {"dave": "sudo"}, "developers, testers and approvers never reach production"


def test_waived_grant_raises_access(tmp_path):
    data = copy.deepcopy(example_data())
    data["people"][0]["access"] = [{"environment": "prod", "level": "login", "waiver": "W-1"}]
    data["waivers"] = [
        {
            "id": "W-1", "control": "ACC-1", "person": "alice", "environment": "prod",
            "justification": "on call for the shop this quarter", "requester": "alice", "approver": "erin",
            "risk": "high", "expires": "2099-12-31",
        }
    ]  # fmt: skip
    model = load_site(write_site(tmp_path / "s", data)).model
    assert levels(model, "prod")["alice"] == "login"


def test_database_sources_and_declared_flows():
    model = site()
    hosts = {h.name: h for h in model.hosts}
    assert policy.service_sources(model, hosts["prod-db1"]) == [
        {"port": 5432, "proto": "tcp", "sources": ["10.90.30.11/32"]}
    ], "the production database accepts only its app hosts"
    assert policy.service_sources(model, hosts["dev-db1"])[0]["sources"] == ["10.90.10.0/24"]
    test_app = policy.service_sources(model, hosts["test-app1"])
    assert test_app == [{"port": 80, "proto": "tcp", "sources": ["10.90.10.0/24", "10.90.20.0/24"]}]
    assert policy.service_sources(model, hosts["prod-app1"])[0]["sources"] == ["10.90.30.0/24"]


def test_developer_database_roles_never_in_production():
    model = site()
    assert policy.database_roles(model, model.environment("dev"))["developers"] == ["alice", "bob"]
    assert policy.database_roles(model, model.environment("prod"))["developers"] == []


def test_deploy_identity_goes_where_releases_go():
    model = site()
    assert policy.deploy_for(model, model.environment("prod"))["name"] == "deploy"
    assert policy.deploy_envs(model) == ["dev", "test", "prod"]


def test_ssh_reaches_an_environment_from_management_and_the_access_networks_that_reach_it(tmp_path):
    model = load_site(write_site(tmp_path / "s", example_with_access_networks())).model
    sources = {env.name: policy.ssh_sources(model, env) for env in model.environments}
    assert sources == {
        "dev": ["10.90.0.0/24", "10.90.50.0/24", "10.90.60.0/28"],
        "test": ["10.90.0.0/24", "10.90.50.0/24", "10.90.60.0/28"],
        "prod": ["10.90.0.0/24", "10.90.60.0/28"],
    }, "the office (developers, testers) never reaches production; the admins' network does"
    assert [a.name for a in policy.access_networks_reaching(model, "prod")] == ["admins"]
    assert policy.probe_address(model.access_network("office")) == ipaddress.IPv4Address("10.90.50.254")
    assert policy.probe_address(model.access_network("admins")) == ipaddress.IPv4Address("10.90.60.14")


def test_without_access_networks_only_management_reaches_ssh():
    model = site()
    assert {policy.ssh_sources(model, env)[0] for env in model.environments} == {"10.90.0.0/24"}
    assert all(len(policy.ssh_sources(model, env)) == 1 for env in model.environments)
