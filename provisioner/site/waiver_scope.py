"""What a waiver's scope may name, checked in the site file: known hosts and environments, path keys (source,
destination, port) only where results are paths, and never a production result of NET-2 or ACC-2.

NET-2 (nothing enters or leaves production but the declared flows) and ACC-2 (a developer's key is refused by every
production host) are the two facts the auditor's first question rests on; no exception may hide either of them in
production. A waiver for them must therefore pin its scope outside production: for NET-2 both ends of the path
(source, or environment or host, for the end the probe runs from; destination for the other), for ACC-2 the host
(environment or host). `conformance/waivers.py` enforces the same rule again on every result it is handed.
"""

from __future__ import annotations

from collections.abc import Iterator

from provisioner.site.model import Site, Waiver
from provisioner.site.yamlsource import KeyPath

Problem = tuple[KeyPath, str]

# Controls whose results are paths between two environments: only their waivers may name source, destination, port.
PATH_CONTROLS = frozenset({"NET-2"})
PATH_KEYS = ("source", "destination", "port")
# Controls never waived in production, and why.
NEVER_WAIVED_IN_PRODUCTION = {
    "NET-2": "NET-2 is never waived in production: no waiver may hide a path into or out of production",
    "ACC-2": "ACC-2 is never waived in production: no waiver may hide a developer's key that a production host accepts",
}


def production_envs(site: Site) -> set[str]:
    """The environments of the production tier."""
    return {e.name for e in site.environments if e.tier == "production"}


def host_environment(site: Site, name: str | None) -> str | None:
    return next((h.environment for h in site.hosts if h.name == name), None)


def scope_environments(site: Site, waiver: Waiver) -> list[str]:
    """The environments a waiver's scope names (through environment, source, destination or host); none: it
    reaches every environment."""
    named = (waiver.environment, waiver.source, waiver.destination, host_environment(site, waiver.host))
    return list(dict.fromkeys(env for env in named if env))


def check_waiver_scopes(site: Site) -> Iterator[Problem]:
    envs = {e.name for e in site.environments}
    hosts = {h.name for h in site.hosts}
    for index, waiver in enumerate(site.waivers):
        path: KeyPath = ("waivers", index)
        if waiver.host is not None and waiver.host not in hosts:
            yield ((*path, "host"), f"unknown host '{waiver.host}'; allowed: {_listed(hosts)}")
        for key in ("source", "destination"):
            value = getattr(waiver, key)
            if value is not None and value not in envs:
                yield ((*path, key), f"unknown environment '{value}'; allowed: {_listed(envs)}")
        if waiver.control not in PATH_CONTROLS:
            for key in PATH_KEYS:
                if getattr(waiver, key) is not None:
                    yield (
                        (*path, key),
                        f"{waiver.control} results are not paths between environments, so '{key}' matches none "
                        f"of them; allowed: {', '.join(PATH_KEYS)} only on a waiver for "
                        f"{', '.join(sorted(PATH_CONTROLS))}",
                    )
        if waiver.control in NEVER_WAIVED_IN_PRODUCTION and production_envs(site):
            yield from _production_reach(site, waiver, path)


def _listed(names: set[str] | list[str]) -> str:
    return ", ".join(sorted(names)) or "(none declared)"


def _production_reach(site: Site, waiver: Waiver, path: KeyPath) -> Iterator[Problem]:
    """A NET-2 or ACC-2 waiver whose scope could cover a production result: the key naming production, or the
    control where no key keeps it out."""
    production = production_envs(site)
    outside = sorted(e.name for e in site.environments if e.tier != "production")
    reason = NEVER_WAIVED_IN_PRODUCTION[waiver.control]
    is_path = waiver.control in PATH_CONTROLS
    # the end the result is about: its subject host's environment (for a path, the end the probe runs from)
    subject_keys = ("environment", "source", "host") if is_path else ("environment", "host")
    pinned = [key for key in subject_keys if getattr(waiver, key) is not None]
    for key in pinned:
        value = getattr(waiver, key)
        if key == "host":
            env = host_environment(site, value)
            if env in production:
                yield (
                    (*path, key),
                    f"host '{value}' is in production environment '{env}'; {reason}; "
                    f"allowed: a host of an environment outside production ({_listed(outside)})",
                )
        elif value in production:
            yield (
                (*path, key),
                f"'{value}' is a production environment; {reason}; "
                f"allowed: an environment outside production ({_listed(outside)})",
            )
    missing = [] if pinned else ["source (or environment or host)" if is_path else "environment or host"]
    if is_path and waiver.destination in production:
        yield (
            (*path, "destination"),
            f"'{waiver.destination}' is a production environment; {reason}; "
            f"allowed: an environment outside production ({_listed(outside)})",
        )
    elif is_path and waiver.destination is None:
        missing.append("destination")
    if missing:
        keys = "source (or environment or host) and destination" if is_path else "environment or host"
        yield (
            (*path, "control"),
            f"without {' or '.join(missing)}, this {waiver.control} waiver could cover a result in production "
            f"({_listed(production)}); {reason}; allowed: {keys}, naming what lies outside production "
            f"({_listed(outside)})",
        )
