"""Checks across the whole site file that a schema alone cannot express."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator

from provisioner.site.access_networks import check_access_networks
from provisioner.site.design import check_design
from provisioner.site.duties import check_duties
from provisioner.site.model import LibvirtSettings, Person, Site, Waiver
from provisioner.site.policy import probe_address
from provisioner.site.vocabulary import DEFAULT_ACCESS, LEVEL_ORDER
from provisioner.site.waiver_scope import check_waiver_scopes
from provisioner.site.watch_schedules import check_watch
from provisioner.site.yamlsource import KeyPath, format_path

Problem = tuple[KeyPath, str]


def check_site(site: Site, today: dt.date | None = None) -> list[Problem]:
    today = today or dt.date.today()
    problems: list[Problem] = []
    for check in (
        _unique_names,
        _segments,
        _hosts,
        _flows,
        _people_and_waivers,
        _deploy_identity,
        _release_path,
        _libvirt_networks,
        _data_authorisations,
    ):
        problems.extend(check(site, today))
    problems.extend(check_access_networks(site))
    problems.extend(check_waiver_scopes(site))
    problems.extend(check_duties(site, today))
    problems.extend(check_design(site))
    problems.extend(check_watch(site))
    return problems


def _env_names(site: Site) -> set[str]:
    return {e.name for e in site.environments}


def _allowed(names: set[str] | list[str]) -> str:
    return ", ".join(sorted(names)) or "(none declared)"


def _usable(cidr: ipaddress.IPv4Network) -> str:
    return f"an address of {cidr} other than {cidr.network_address} and {cidr.broadcast_address}"


def _roles_in(site: Site, env_name: str) -> set[str]:
    return {role for host in site.hosts_in(env_name) for role in host.roles}


def _approvers(site: Site) -> list[str]:
    return [p.name for p in site.people if {"approver", "admin"} & set(p.roles)]


def _unique_names(site: Site, today: dt.date) -> Iterator[Problem]:
    for section, items in (
        ("environments", [e.name for e in site.environments]),
        ("hosts", [h.name for h in site.hosts]),
        ("people", [p.name for p in site.people]),
        ("waivers", [w.id for w in site.waivers]),
    ):
        seen: dict[str, int] = {}
        for index, name in enumerate(items):
            if name in seen:
                yield (
                    (section, index, "id" if section == "waivers" else "name"),
                    f"'{name}' is declared twice (first at {section}[{seen[name]}]); allowed: a name used once",
                )
            seen.setdefault(name, index)
    if site.deploy and site.person(site.deploy.name):
        yield (
            ("deploy", "name"),
            f"deploy identity '{site.deploy.name}' has the same name as a person; allowed: a name no person has",
        )


def _segments(site: Site, today: dt.date) -> Iterator[Problem]:
    mgmt = site.management
    if mgmt.controller not in mgmt.cidr or mgmt.controller in (mgmt.cidr.network_address, mgmt.cidr.broadcast_address):
        yield (
            ("management", "controller"),
            f"{mgmt.controller} is not a usable address of {mgmt.cidr}; allowed: {_usable(mgmt.cidr)}",
        )
    if mgmt.gateway not in mgmt.cidr or mgmt.gateway in (mgmt.cidr.network_address, mgmt.cidr.broadcast_address):
        yield (
            ("management", "gateway"),
            f"{mgmt.gateway} is not a usable address of {mgmt.cidr}; allowed: {_usable(mgmt.cidr)}",
        )
    if mgmt.gateway == mgmt.controller:
        yield (
            ("management", "gateway"),
            "the gateway and the controller need different addresses; allowed: any other usable address",
        )

    networks: list[tuple[KeyPath, str, ipaddress.IPv4Network]] = [(("management", "cidr"), "management", mgmt.cidr)]
    vlans: dict[int, str] = {}
    if site.backend.type != "lxc" and mgmt.vlan is None:
        yield (
            ("management", "vlan"),
            f"the {site.backend.type} backend puts the management network on its own VLAN; allowed: a VLAN id 1-4094",
        )
    if mgmt.vlan is not None:
        vlans[mgmt.vlan] = "management"
    vnets: dict[str, str] = {mgmt.vnet: "management"} if mgmt.vnet else {}
    for index, env in enumerate(site.environments):
        seg = env.segment
        path: KeyPath = ("environments", index, "segment")
        if seg.cidr.prefixlen > 29:
            yield ((*path, "cidr"), f"{seg.cidr} is too small for a segment; allowed: a prefix of /29 or shorter")
        for other_path, other_name, other in networks:
            if seg.cidr.overlaps(other):
                yield (
                    (*path, "cidr"),
                    f"{seg.cidr} of '{env.name}' overlaps {other} of '{other_name}' ({format_path(other_path)}); "
                    "allowed: a subnet of its own that overlaps no other",
                )
        networks.append(((*path, "cidr"), env.name, seg.cidr))
        if seg.vlan in vlans:
            yield (
                (*path, "vlan"),
                f"VLAN {seg.vlan} is already used by '{vlans[seg.vlan]}'; allowed: a VLAN id of its own",
            )
        vlans.setdefault(seg.vlan, env.name)
        if seg.vnet and seg.vnet in vnets:
            yield (
                (*path, "vnet"),
                f"VNet '{seg.vnet}' is already used by '{vnets[seg.vnet]}'; allowed: a VNet id of its own",
            )
        if seg.vnet:
            vnets.setdefault(seg.vnet, env.name)
        if seg.gateway not in seg.cidr or seg.gateway in (seg.cidr.network_address, seg.cidr.broadcast_address):
            yield (
                (*path, "gateway"),
                f"{seg.gateway} is not a usable address of {seg.cidr}; allowed: {_usable(seg.cidr)}",
            )
        elif seg.gateway == probe_address(env):
            yield (
                (*path, "gateway"),
                f"{seg.gateway} is the segment's last usable address, reserved for verify's probe; "
                f"allowed: {_usable(seg.cidr)} but {seg.gateway}",
            )


def _hosts(site: Site, today: dt.date) -> Iterator[Problem]:
    envs = {e.name: e for e in site.environments}
    taken: dict[ipaddress.IPv4Address, str] = {site.management.controller: "the controller"}
    for env in site.environments:
        taken[env.segment.gateway] = f"the gateway of '{env.name}'"
        taken.setdefault(probe_address(env), f"verify's probe on '{env.name}' (a segment's last usable address)")
    for index, host in enumerate(site.hosts):
        path: KeyPath = ("hosts", index)
        host_env = envs.get(host.environment)
        if host_env is None:
            yield ((*path, "environment"), f"unknown environment '{host.environment}'; allowed: {_allowed(set(envs))}")
            continue
        cidr = host_env.segment.cidr
        if host.address not in cidr:
            yield (
                (*path, "address"),
                f"{host.address} is outside the '{host_env.name}' segment {cidr}; allowed: {_usable(cidr)}",
            )
        elif host.address in (cidr.network_address, cidr.broadcast_address):
            yield (
                (*path, "address"),
                f"{host.address} is the network or broadcast address of {cidr}; allowed: {_usable(cidr)}",
            )
        elif host.address in taken:
            yield (
                (*path, "address"),
                f"{host.address} is already used by {taken[host.address]}; allowed: an address no host or gateway has",
            )
        taken.setdefault(host.address, f"host '{host.name}'")


def _flows(site: Site, today: dt.date) -> Iterator[Problem]:
    envs = {e.name: e for e in site.environments}
    for index, flow in enumerate(site.flows):
        path: KeyPath = ("flows", index)
        src, dst = envs.get(flow.from_env), envs.get(flow.to_env)
        if src is None:
            yield ((*path, "from"), f"unknown environment '{flow.from_env}'; allowed: {_allowed(set(envs))}")
        if dst is None:
            yield ((*path, "to"), f"unknown environment '{flow.to_env}'; allowed: {_allowed(set(envs))}")
        if src is None or dst is None:
            continue
        if src.name == dst.name:
            yield (
                (*path, "to"),
                "a flow must join two different environments (traffic inside one is not a flow); "
                "allowed: another environment",
            )
        if dst.tier == "production" and src.tier != "production":
            yield (
                (*path, "to"),
                f"a flow from {src.tier} environment '{src.name}' into production environment '{dst.name}' "
                "is refused: nothing in development or test may open a connection into production (NET-2); "
                "allowed: flows between development and test, or out of production",
            )
        for role_index, role in enumerate(flow.to_roles):
            if not any(role in h.roles for h in site.hosts_in(dst.name)):
                yield (
                    (*path, "to_roles", role_index),
                    f"no host in '{dst.name}' has role '{role}'; allowed: {_allowed(_roles_in(site, dst.name))}",
                )


def _waiver_problems(site: Site, waiver: Waiver, today: dt.date) -> list[str]:
    problems = []
    if waiver.approver == waiver.requester:
        problems.append(f"waiver '{waiver.id}' is approved by its own requester '{waiver.requester}'")
    approver = site.person(waiver.approver)
    if approver is not None and not {"approver", "admin"} & set(approver.roles):
        problems.append(f"waiver '{waiver.id}' approver '{waiver.approver}' is neither approver nor admin")
    if waiver.expires < today:
        problems.append(f"waiver '{waiver.id}' expired on {waiver.expires.isoformat()}")
    return problems


def _people_and_waivers(site: Site, today: dt.date) -> Iterator[Problem]:
    envs = {e.name: e for e in site.environments}
    people = {p.name for p in site.people}
    for index, waiver in enumerate(site.waivers):
        path: KeyPath = ("waivers", index)
        for key in ("requester", "approver"):
            who = getattr(waiver, key)
            if who not in people:
                yield ((*path, key), f"unknown person '{who}'; allowed: {_allowed(people)}")
        if waiver.person is not None and waiver.person not in people:
            yield ((*path, "person"), f"unknown person '{waiver.person}'; allowed: {_allowed(people)}")
        if waiver.environment is not None and waiver.environment not in envs:
            yield (
                (*path, "environment"),
                f"unknown environment '{waiver.environment}'; allowed: {_allowed(set(envs))}",
            )
        if waiver.approver == waiver.requester:
            yield (
                (*path, "approver"),
                "a waiver must be approved by someone other than its requester (ACC-7); allowed: another person",
            )
    for index, person in enumerate(site.people):
        for grant_index, grant in enumerate(person.access):
            path = ("people", index, "access", grant_index)
            env = envs.get(grant.environment)
            if env is None:
                yield (
                    (*path, "environment"),
                    f"unknown environment '{grant.environment}'; allowed: {_allowed(set(envs))}",
                )
                continue
            yield from _grant_needs_waiver(site, person, grant.environment, grant.level, grant.waiver, path, today)


def _grant_needs_waiver(
    site: Site, person: Person, env_name: str, level: str, waiver_id: str | None, path: KeyPath, today: dt.date
) -> Iterator[Problem]:
    env = site.environment(env_name)
    if env.tier != "production" or not {"developer", "tester"} & set(person.roles):
        return
    default = max((DEFAULT_ACCESS[r][env.tier] for r in person.roles), key=LEVEL_ORDER.__getitem__)
    if LEVEL_ORDER[level] <= LEVEL_ORDER[default]:
        return
    label = f"{'/'.join(person.roles)} '{person.name}' is granted {level} on production environment '{env_name}'"
    if waiver_id is None:
        yield (
            (*path, "waiver"),
            f"{label} without a waiver; allowed: the grant under a waiver for ACC-1 (a recorded exception, ACC-7), "
            "or no grant",
        )
        return
    waiver = site.waiver(waiver_id)
    if waiver is None:
        known = _allowed({w.id for w in site.waivers})
        yield ((*path, "waiver"), f"{label} under unknown waiver '{waiver_id}'; allowed: {known}")
        return
    problems = _waiver_problems(site, waiver, today)
    if waiver.person not in (None, person.name) or waiver.environment not in (None, env_name):
        problems.append(f"waiver '{waiver.id}' does not cover this person and environment")
    if waiver.control != "ACC-1":
        problems.append(f"waiver '{waiver.id}' waives {waiver.control}, not ACC-1")
    for problem in problems:
        yield (
            (*path, "waiver"),
            f"{label} without a valid waiver: {problem}; allowed: an unexpired ACC-1 waiver for this person and "
            "environment, approved by an approver or admin other than its requester",
        )


def _deploy_identity(site: Site, today: dt.date) -> Iterator[Problem]:
    if site.deploy is None or site.deploy.environments is None:
        return
    envs = _env_names(site)
    for index, name in enumerate(site.deploy.environments):
        if name not in envs:
            yield (("deploy", "environments", index), f"unknown environment '{name}'; allowed: {_allowed(envs)}")


def _release_path(site: Site, today: dt.date) -> Iterator[Problem]:
    envs = {e.name: e for e in site.environments}
    rank = {"development": 0, "test": 1, "production": 2}
    previous = -1
    for index, name in enumerate(site.releases.path):
        env = envs.get(name)
        if env is None:
            yield (("releases", "path", index), f"unknown environment '{name}'; allowed: {_allowed(set(envs))}")
            continue
        if rank[env.tier] < previous:
            yield (
                ("releases", "path", index),
                f"'{name}' ({env.tier}) comes after a higher tier; "
                "allowed: development -> test -> production, in that order",
            )
        previous = rank[env.tier]
    if len(set(site.releases.path)) != len(site.releases.path):
        yield (
            ("releases", "path"),
            "an environment appears twice in the release path (nothing moves backwards); "
            "allowed: each environment once",
        )
    approvers = [p for p in site.people if "approver" in p.roles]
    if site.releases.required_approvals > len(approvers):
        yield (
            ("releases", "required_approvals"),
            f"{site.releases.required_approvals} approvals required but only {len(approvers)} "
            f"{'person has' if len(approvers) == 1 else 'people have'} the approver role; "
            f"allowed: 1 to {max(len(approvers), 1)}",
        )


def _libvirt_networks(site: Site, today: dt.date) -> Iterator[Problem]:
    """libvirt bridge mode: one host bridge per segment (each environment, each access network and 'mgmt'),
    nothing else."""
    backend = site.backend
    if not isinstance(backend, LibvirtSettings):
        return
    segments = ["mgmt", *(e.name for e in site.environments), *(a.name for a in site.access_networks)]
    if backend.network_mode == "openvswitch":
        if backend.bridges:
            yield (
                ("backend", "bridges"),
                "bridges are for network_mode 'bridge'; "
                "allowed in openvswitch mode: ovs_bridge (every segment a VLAN on it)",
            )
        return
    if backend.ovs_bridge:
        yield (
            ("backend", "ovs_bridge"),
            "ovs_bridge is for network_mode 'openvswitch'; allowed in bridge mode: bridges",
        )
    for key in backend.bridges:
        if key not in segments:
            yield (("backend", "bridges", key), f"unknown segment '{key}'; allowed: {_allowed(segments)}")
    for key in segments:
        if key not in backend.bridges:
            yield (
                ("backend", "bridges"),
                f"network_mode 'bridge' needs the host bridge of segment '{key}' (one Linux bridge per VLAN); "
                f"allowed: a bridge for each of {_allowed(segments)}",
            )
    used: dict[str, str] = {}
    for key, bridge in backend.bridges.items():
        if bridge in used:
            yield (
                ("backend", "bridges", key),
                f"bridge '{bridge}' already carries segment '{used[bridge]}'; allowed: a bridge of its own per segment",
            )
        used.setdefault(bridge, key)


def _data_authorisations(site: Site, today: dt.date) -> Iterator[Problem]:
    """Refresh authorisations (DATA-3): known people, an approver who may approve, production into test."""
    envs = {e.name: e for e in site.environments}
    for index, env in enumerate(site.environments):
        if env.data == "live" and env.tier != "production":
            yield (
                ("environments", index, "data"),
                f"'{env.name}' is a {env.tier} environment: live data belongs only in production; "
                "allowed here: dummy, anonymised (DATA-1)",
            )
    people = {p.name for p in site.people}
    seen: dict[str, int] = {}
    for index, auth in enumerate(site.test_data.authorisations):
        path: KeyPath = ("test_data", "authorisations", index)
        if auth.id in seen:
            yield (
                (*path, "id"),
                f"'{auth.id}' is declared twice (first at test_data.authorisations[{seen[auth.id]}]); "
                "allowed: an id used once",
            )
        seen.setdefault(auth.id, index)
        for key in ("requester", "approver"):
            who = getattr(auth, key)
            if who not in people:
                yield ((*path, key), f"unknown person '{who}'; allowed: {_allowed(people)}")
        approver = site.person(auth.approver)
        if approver is not None and not {"approver", "admin"} & set(approver.roles):
            yield (
                (*path, "approver"),
                f"'{auth.approver}' is neither approver nor admin; allowed: {_allowed(_approvers(site))}",
            )
        source, target = envs.get(auth.from_env), envs.get(auth.to_env)
        if source is None:
            yield ((*path, "from"), f"unknown environment '{auth.from_env}'; allowed: {_allowed(set(envs))}")
        elif source.tier != "production":
            production = [e.name for e in site.environments if e.tier == "production"]
            yield (
                (*path, "from"),
                f"'{auth.from_env}' is not a production environment; allowed: {_allowed(production)}",
            )
        if target is None:
            yield ((*path, "to"), f"unknown environment '{auth.to_env}'; allowed: {_allowed(set(envs))}")
        elif target.tier == "production" or target.data != "anonymised":
            allowed = sorted(e.name for e in site.environments if e.data == "anonymised" and e.tier != "production")
            yield (
                (*path, "to"),
                f"'{auth.to_env}' does not hold anonymised data; allowed targets: {_allowed(allowed)}",
            )
