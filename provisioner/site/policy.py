"""The separation policy derived from the site file: who may log in where, which flows pass, which
service ports accept whom. Roles receive these facts through the inventory; checks compare against them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from provisioner.site.model import AccessNetwork, Environment, Host, Person, Site
from provisioner.site.vocabulary import DEFAULT_ACCESS, HOST_ROLES, LEVEL_ORDER


def access_level(site: Site, person: Person, env: Environment) -> str:
    """none | login | sudo: the people roles' default for the tier, raised by grants in the site file."""
    level = max((DEFAULT_ACCESS[role][env.tier] for role in person.roles), key=LEVEL_ORDER.__getitem__)
    for grant in person.access:
        if grant.environment == env.name and LEVEL_ORDER[grant.level] > LEVEL_ORDER[level]:
            level = grant.level
    return level


def accounts_for(site: Site, env: Environment) -> list[dict[str, str]]:
    accounts = []
    for person in site.people:
        level = access_level(site, person, env)
        if level != "none":
            accounts.append(
                {"name": person.name, "full_name": person.full_name, "ssh_key": person.ssh_key, "level": level}
            )
    return accounts


def probe_address(zone: Environment | AccessNetwork) -> ipaddress.IPv4Address:
    """The address verify's probe takes on an environment's segment or on an access network: its last usable one,
    which no host and no gateway may take (site validation refuses it)."""
    cidr = zone.segment.cidr if isinstance(zone, Environment) else zone.cidr
    return cidr.broadcast_address - 1


# DATA-1, DATA-2: the controller reads the databases outside production over the wire, from its probe on the
# segment, as this read-only role (pg_read_all_data; its password in the site's secrets; pg_hba.conf admits it from
# the probe's address only). Production's databases are never read this way.
DATA_READER_ROLE = "provisioner_reader"


def data_reader_environments(site: Site) -> list[Environment]:
    """The environments whose databases the controller's reader may read: every one outside production."""
    return [e for e in site.environments if e.tier != "production"]


def access_networks_reaching(site: Site, env_name: str) -> list[AccessNetwork]:
    """The access networks whose people may open SSH to the hosts of an environment."""
    return [a for a in site.access_networks if env_name in a.reaches]


def ssh_sources(site: Site, env: Environment) -> list[str]:
    """Where SSH to a host of `env` may come from: the management network (the controller and the admins), then
    each access network that reaches the environment; nothing else (NET-2, NET-3)."""
    return [str(site.management.cidr), *(str(a.cidr) for a in access_networks_reaching(site, env.name))]


def deploy_envs(site: Site) -> list[str]:
    if site.deploy is None:
        return []
    if site.deploy.environments is not None:
        return list(site.deploy.environments)
    return list(site.releases.path)


def deploy_for(site: Site, env: Environment) -> dict[str, str] | None:
    if site.deploy is None or env.name not in deploy_envs(site):
        return None
    return {"name": site.deploy.name, "ssh_key": site.deploy.ssh_key}


@dataclass(frozen=True)
class Flow:
    """A resolved flow: source subnet, destination addresses, ports."""

    from_env: str
    to_env: str
    from_cidr: str
    to_addresses: tuple[str, ...]
    ports: tuple[int, ...]
    proto: str

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.from_env,
            "to": self.to_env,
            "from_cidr": self.from_cidr,
            "to_addresses": list(self.to_addresses),
            "ports": list(self.ports),
            "proto": self.proto,
        }


def resolved_flows(site: Site) -> list[Flow]:
    flows = []
    for flow in site.flows:
        targets = [
            str(h.address) for h in site.hosts_in(flow.to_env) if not flow.to_roles or set(flow.to_roles) & set(h.roles)
        ]
        flows.append(
            Flow(
                flow.from_env,
                flow.to_env,
                str(site.environment(flow.from_env).segment.cidr),
                tuple(targets),
                tuple(flow.ports),
                flow.proto,
            )
        )
    return flows


def service_ports(host: Host) -> list[int]:
    return sorted({port for role in host.roles for port in HOST_ROLES[role].ports})


def app_hosts(site: Site, env_name: str) -> list[Host]:
    return [h for h in site.hosts_in(env_name) if "app" in h.roles]


def service_sources(site: Site, host: Host) -> list[dict[str, object]]:
    """For each service port of `host`, the sources allowed to reach it.

    Inside an environment: the database accepts its environment's app hosts (in production, only them);
    other services accept the environment's own subnet. Between environments: only declared flows.
    """
    env = site.environment(host.environment)
    services = []
    for port in service_ports(host):
        if port == 5432:
            sources = [f"{h.address}/32" for h in app_hosts(site, env.name)]
            if env.tier != "production":
                sources = [str(env.segment.cidr)]
        else:
            sources = [str(env.segment.cidr)]
        for flow in resolved_flows(site):
            if flow.to_env == env.name and str(host.address) in flow.to_addresses and port in flow.ports:
                sources.append(flow.from_cidr)
        services.append({"port": port, "proto": "tcp", "sources": sorted(set(sources))})
    return services


def database_roles(site: Site, env: Environment) -> dict[str, list[str]]:
    """Database login roles per kind: developers only outside production; admins everywhere."""
    developers = [p.name for p in site.people if access_level(site, p, env) != "none" and "developer" in p.roles]
    if env.tier == "production":
        developers = []
    admins = [p.name for p in site.people if "admin" in p.roles]
    return {"developers": developers, "admins": admins}


# LOG-1: production hosts ship their journal off the host, to the controller's receiver on the management network
LOG_RECEIVER_PORT = 19532


def log_receiver_url(site: Site) -> str:
    return f"https://{site.management.controller}:{LOG_RECEIVER_PORT}"


def log_shipping_environments(site: Site) -> list[Environment]:
    """The environments whose hosts ship their journal to the controller: production."""
    return [e for e in site.environments if e.tier == "production"]


def log_shipping_hosts(site: Site) -> list[Host]:
    return [h for e in log_shipping_environments(site) for h in site.hosts_in(e.name)]
