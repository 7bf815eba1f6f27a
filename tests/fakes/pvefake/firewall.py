"""Firewall (pve-firewall): cluster options, security groups, IP sets, aliases, cluster, VNet and per-VM rules.

Rules are kept as PVE keeps them: `POST .../rules` inserts at position 0 (unshift), so existing
rules shift down, and a rule is disabled (`enable: 0`) unless `enable=1` is sent. Positions address
rules in `.../rules/{pos}`; a missing one is `no rule at position N`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from .api import Api, Request, Routes
from .common import list_param, opt_int, opt_str
from .errors import die, param_error
from .state import IpSet, SecurityGroup, config_digest

ROUTES = Routes()
RULE_FIELDS = (
    "type",
    "action",
    "enable",
    "macro",
    "source",
    "dest",
    "proto",
    "dport",
    "sport",
    "iface",
    "log",
    "comment",
    "icmp-type",
)
OPTION_SKIP = frozenset({"node", "vmid", "digest", "delete"})
MACROS = frozenset(
    {
        "Amanda", "Auth", "BGP", "BitTorrent", "BitTorrent32", "CVS", "Ceph", "Citrix", "DAAP", "DCC", "DHCPfwd",
        "DHCPv6", "DNS", "Distcc", "FTP", "Finger", "GNUnet", "GRE", "Git", "HKP", "HTTP", "HTTPS", "ICPV2", "ICQ",
        "IMAP", "IMAPS", "IPIP", "IPsec", "IPsecah", "IPsecnat", "IRC", "Jetdirect", "L2TP", "LDAP", "LDAPS", "MDNS",
        "MSNP", "MSSQL", "Mail", "Munin", "MySQL", "NNTP", "NNTPS", "NTP", "NeighborDiscovery", "OSPF", "OpenVPN",
        "PCA", "PMG", "POP3", "POP3S", "PPtP", "Ping", "PostgreSQL", "Printer", "RDP", "RIP", "RNDC", "Razor",
        "Rdate", "Rsync", "SANE", "SMB", "SMBswat", "SMTP", "SMTPS", "SNMP", "SPAMD", "SPICEproxy", "SSH", "SVN",
        "SixXS", "Squid", "Submission", "Syslog", "TFTP", "Telnet", "Telnets", "Time", "Trcrt", "VNC", "VNCL",
        "Web", "Webcache", "Webmin", "Whois",
    }
)  # fmt: skip
PORT_PROTOCOLS = frozenset({"tcp", "udp", "dccp", "sctp", "6", "17", "33", "132"})
DIGEST_MISMATCH = "detected modified configuration - file changed by other user? Try again."


# -- rule verification ----------------------------------------------------------------------------


def _address_refs(api: Api, value: str, errors: dict[str, str], field: str) -> int | None:
    """An IP set or alias a rule names must exist (pve-firewall's verify_rule: `+[guest/|dc/|sdn/]name` is an IP
    set, a bare or `dc/`-scoped name an alias, looked up lower-case); returns the alias's IP version."""
    if value.startswith("+"):
        name = value[1:].split("/", 1)[-1]
        if name not in api.state.firewall.ipsets:
            errors.setdefault(field, f"no such ipset '{name}'")
    elif value[:1].isalpha() and ":" not in value and "." not in value and "," not in value:
        alias = api.state.firewall.aliases.get(value.split("/", 1)[-1].lower())
        if alias is None:
            errors.setdefault(field, f"no such alias '{value}'")
        else:
            return int(alias["ipversion"])
    else:
        return _ip_version(value)
    return None


def _ip_version(value: str) -> int | None:
    """The address family of a literal address list (parse_address_list), None when it names none."""
    for part in value.split(","):
        try:
            return ipaddress.ip_network(part.split("-", 1)[0], strict=False).version
        except ValueError:
            continue
    return None


# pve-firewall's rule_env_direction_lookup: the rule types each place allows
RULE_TYPES = {
    "group": ("in", "out", "forward"),
    "cluster": ("in", "out", "forward", "group"),
    "host": ("in", "out", "forward", "group"),
    "vm": ("in", "out", "group"),
    "vnet": ("forward", "group"),
}


def verify_rule(api: Api, rule: dict[str, Any], in_group: bool, env: str | None = None) -> None:
    """pve-firewall's verify_rule; sets `ipversion` as it does when an address or alias fixes the family."""
    errors: dict[str, str] = {}
    kind, action = rule.get("type"), rule.get("action")
    env = env or ("group" if in_group else "cluster")
    if kind and kind not in RULE_TYPES[env]:
        errors["type"] = f"invalid rule type '{kind}' for rule_env '{env}'"
    if kind == "group":
        # verify_rule checks only the name's characters: a rule may name a group that does not exist (or no longer
        # does); the compiler warns `no such security group` and skips it
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9\-_]+", str(action)):
            errors.setdefault("action", "invalid characters in security group name")
    elif action not in ("ACCEPT", "DROP", "REJECT"):
        errors["action"] = f"unknown action '{action}'"
    macro = rule.get("macro")
    if macro and macro not in MACROS:
        errors["macro"] = f"unknown macro '{macro}'"
    versions = set()
    for field in ("source", "dest"):
        if rule.get(field):
            versions.add(_address_refs(api, str(rule[field]), errors, field))
    if rule.get("proto") == "icmp":
        versions.add(4)
    elif rule.get("proto") in ("icmpv6", "ipv6-icmp"):
        versions.add(6)
    versions.discard(None)
    if len(versions) > 1:
        raise die("detected mixed ipv4/ipv6 addresses in rule")
    rule.pop("ipversion", None)
    if versions:
        rule["ipversion"] = versions.pop()
    for field in ("dport", "sport"):
        if rule.get(field):
            proto = rule.get("proto")
            if not proto:
                errors.setdefault("proto", f"missing property - '{field}' requires this property")
            elif str(proto) not in PORT_PROTOCOLS:
                errors.setdefault(field, f"protocol '{proto}' does not support ports")
            else:
                problem = port_list_problem(str(rule[field]))
                if problem:
                    errors.setdefault(field, problem)
    if errors:
        raise param_error(errors)


MAX_PORT_NUMBERS = 15  # iptables' multiport match takes 15 ports; pve-firewall counts a range a:b as two


def port_list_problem(text: str) -> str | None:
    """pve-firewall's parse_port_name_number_or_range, for numbers and ranges (service names are taken as valid)."""
    items = text.split(",")
    if any(not item for item in items):
        return "extraneous commas in list"
    count = 0
    for item in items:
        low, sep, high = item.partition(":")
        if not (low.isdigit() and (not sep or high.isdigit())):
            continue  # a service name from /etc/services
        for port in (low, high) if sep else (low,):
            if int(port) > 65535:
                return f"invalid port '{port}'"
        if sep and int(low) > int(high):
            return f"backwards range '{item}' not allowed, did you mean '{high}:{low}'?"
        count += 2 if sep else 1
    if count > MAX_PORT_NUMBERS:
        return f"too many entries in port list (> {MAX_PORT_NUMBERS} numbers)"
    return None


def _rule_from(params: dict[str, Any]) -> dict[str, Any]:
    rule = {k: params[k] for k in RULE_FIELDS if params.get(k) is not None}
    rule["enable"] = int(params["enable"]) if params.get("enable") is not None else 0
    return rule


def rule_listing(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    digest = config_digest({str(i): repr(sorted(r.items())) for i, r in enumerate(rules)})
    return [{**r, "pos": i, "digest": digest} for i, r in enumerate(rules)]


def _at(rules: list[dict[str, Any]], pos: int) -> dict[str, Any]:
    if pos < 0 or pos >= len(rules):
        raise die(f"no rule at position {pos}")
    return rules[pos]


def _check_digest(rules: list[dict[str, Any]], params: dict[str, Any]) -> None:
    digest = opt_str(params, "digest")
    if digest and rules and digest != rule_listing(rules)[0]["digest"]:
        raise die(DIGEST_MISMATCH)


def create_rule(
    api: Api, req: Request, rules: list[dict[str, Any]], in_group: bool = False, env: str | None = None
) -> None:
    _check_digest(rules, req.params)
    rule = _rule_from(req.params)
    verify_rule(api, rule, in_group, env)
    rules.insert(0, rule)  # PVE unshifts: the new rule goes to the top


def update_rule(
    api: Api, req: Request, rules: list[dict[str, Any]], in_group: bool = False, env: str | None = None
) -> None:
    params = req.params
    pos = int(params["pos"])
    rule = _at(rules, pos)
    _check_digest(rules, params)
    moveto = opt_int(params, "moveto")
    if moveto is not None and moveto != pos:
        others = [r for i, r in enumerate(rules) if i != pos]
        index = moveto if moveto < pos else moveto - 1
        others.insert(min(max(index, 0), len(others)), rule)
        rules[:] = others
        return
    updated = dict(rule)
    updated.update({k: params[k] for k in RULE_FIELDS if params.get(k) is not None})
    if params.get("enable") is not None:
        updated["enable"] = int(params["enable"])
    for key in list_param(params, "delete"):
        updated.pop(key, None)
    verify_rule(api, updated, in_group, env)
    rules[pos] = updated


def delete_rule(req: Request, rules: list[dict[str, Any]]) -> None:
    pos = int(req.params["pos"])
    _at(rules, pos)
    _check_digest(rules, req.params)
    del rules[pos]


def _options_get(options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "digest": config_digest(options)}


def _options_put(options: dict[str, Any], params: dict[str, Any]) -> None:
    digest = opt_str(params, "digest")
    if digest and digest != config_digest(options):
        raise die(DIGEST_MISMATCH)
    for key in list_param(params, "delete"):
        options.pop(key, None)
    for key, value in params.items():
        if key not in OPTION_SKIP:
            options[key] = int(value) if str(value).isdigit() else value


# -- the rules and options of each firewall scope ------------------------------------------------------------------
RulesOf = Callable[[Api, Request], list[dict[str, Any]]]
OptionsOf = Callable[[Api, Request], dict[str, Any]]


def serve_rules(prefix: str, rules_of: RulesOf, env: str) -> None:
    """GET/POST `<prefix>/rules` and GET/PUT/DELETE `<prefix>/rules/{pos}` over the rule list `rules_of` finds;
    `env` is the scope whose rule types are allowed (pve-firewall's rule_env_direction_lookup)."""

    def listing(api: Api, req: Request) -> list[dict[str, Any]]:
        return rule_listing(rules_of(api, req))

    def create(api: Api, req: Request) -> None:
        create_rule(api, req, rules_of(api, req), env=env)

    def one(api: Api, req: Request) -> dict[str, Any]:
        rules = rules_of(api, req)
        pos = int(req.params["pos"])
        _at(rules, pos)
        return rule_listing(rules)[pos]

    def update(api: Api, req: Request) -> None:
        update_rule(api, req, rules_of(api, req), env=env)

    def delete(api: Api, req: Request) -> None:
        delete_rule(req, rules_of(api, req))

    for method, path, handler in (
        ("GET", "/rules", listing),
        ("POST", "/rules", create),
        ("GET", "/rules/{pos}", one),
        ("PUT", "/rules/{pos}", update),
        ("DELETE", "/rules/{pos}", delete),
    ):
        ROUTES.add(method, prefix + path)(handler)


def serve_options(prefix: str, options_of: OptionsOf) -> None:
    """GET/PUT `<prefix>/options` over the options `options_of` finds."""
    ROUTES.add("GET", f"{prefix}/options")(lambda api, req: _options_get(options_of(api, req)))
    ROUTES.add("PUT", f"{prefix}/options")(lambda api, req: _options_put(options_of(api, req), req.params))


# -- cluster options and rules --------------------------------------------------------------------


@ROUTES.add("GET", "/cluster/firewall")
def fw_index(api: Api, req: Request) -> list[dict[str, str]]:
    return [{"name": n} for n in ("aliases", "rules", "options", "groups", "ipset", "macros", "refs")]


serve_options("/cluster/firewall", lambda api, req: api.state.firewall.cluster_options)


@ROUTES.add("GET", "/cluster/firewall/macros")
def macros(api: Api, req: Request) -> list[dict[str, str]]:
    return [{"macro": m, "descr": f"{m} traffic"} for m in sorted(MACROS)]


serve_rules("/cluster/firewall", lambda api, req: api.state.firewall.cluster_rules, env="cluster")


# -- security groups ------------------------------------------------------------------------------


def _group(api: Api, name: str) -> SecurityGroup:
    group = api.state.firewall.groups.get(name)
    if group is None:
        raise die(f"no such security group '{name}'")
    return group


@ROUTES.add("GET", "/cluster/firewall/groups")
def list_groups(api: Api, req: Request) -> list[dict[str, Any]]:
    out = []
    for name in sorted(api.state.firewall.groups):
        group = api.state.firewall.groups[name]
        entry: dict[str, Any] = {"group": name, "digest": config_digest({"rules": repr(group.rules)})}
        if group.comment:
            entry["comment"] = group.comment
        out.append(entry)
    return out


@ROUTES.add("POST", "/cluster/firewall/groups")
def create_group(api: Api, req: Request) -> None:
    groups = api.state.firewall.groups
    name = str(req.params["group"])
    rename = opt_str(req.params, "rename")
    if rename is not None:
        if rename not in groups:
            raise die(f"no such security group '{rename}'")
        if name in groups and name != rename:
            raise param_error({"group": f"Security group '{name}' already exists"})
        group = groups.pop(rename)
        group.name = name
        if req.params.get("comment") is not None:
            group.comment = str(req.params["comment"])
        groups[name] = group
        for rules in [api.state.firewall.cluster_rules, *api.state.firewall.vm_rules.values()]:
            for rule in rules:
                if rule.get("type") == "group" and rule.get("action") == rename:
                    rule["action"] = name
        return
    if name in groups:
        raise param_error({"group": f"Security group '{name}' already exists"})
    groups[name] = SecurityGroup(name, comment=str(req.params.get("comment") or ""))


@ROUTES.add("GET", "/cluster/firewall/groups/{group}")
def group_rules(api: Api, req: Request) -> list[dict[str, Any]]:
    return rule_listing(_group(api, str(req.params["group"])).rules)


@ROUTES.add("POST", "/cluster/firewall/groups/{group}")
def add_group_rule(api: Api, req: Request) -> None:
    create_rule(api, req, _group(api, str(req.params["group"])).rules, in_group=True)


@ROUTES.add("DELETE", "/cluster/firewall/groups/{group}")
def delete_group(api: Api, req: Request) -> None:
    name = str(req.params["group"])
    group = _group(api, name)
    # pve-firewall's delete_security_group refuses only a group with rules; rules that name it are left as they are
    # (the compiler skips them), so a referenced empty group goes without a word.
    if group.rules:
        raise die(f"Security group '{name}' is not empty")
    del api.state.firewall.groups[name]


@ROUTES.add("GET", "/cluster/firewall/groups/{group}/{pos}")
def get_group_rule(api: Api, req: Request) -> dict[str, Any]:
    rules = _group(api, str(req.params["group"])).rules
    pos = int(req.params["pos"])
    _at(rules, pos)
    return rule_listing(rules)[pos]


@ROUTES.add("PUT", "/cluster/firewall/groups/{group}/{pos}")
def set_group_rule(api: Api, req: Request) -> None:
    update_rule(api, req, _group(api, str(req.params["group"])).rules, in_group=True)


@ROUTES.add("DELETE", "/cluster/firewall/groups/{group}/{pos}")
def del_group_rule(api: Api, req: Request) -> None:
    delete_rule(req, _group(api, str(req.params["group"])).rules)


# -- IP sets --------------------------------------------------------------------------------------


def _ipset(api: Api, name: str) -> IpSet:
    ipset = api.state.firewall.ipsets.get(name)
    if ipset is None:
        raise die(f"no such IPSet '{name}'")
    return ipset


@ROUTES.add("GET", "/cluster/firewall/ipset")
def list_ipsets(api: Api, req: Request) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "digest": config_digest({"entries": repr(s.entries)}),
            **({"comment": s.comment} if s.comment else {}),
        }
        for s in sorted(api.state.firewall.ipsets.values(), key=lambda s: s.name)
    ]


@ROUTES.add("POST", "/cluster/firewall/ipset")
def create_ipset(api: Api, req: Request) -> None:
    sets = api.state.firewall.ipsets
    name = str(req.params["name"])
    rename = opt_str(req.params, "rename")
    if rename is not None:
        ipset = _ipset(api, rename)
        if name in sets and name != rename:
            raise param_error({"name": f"IPSet '{name}' already exists"})
        del sets[rename]
        ipset.name = name
        sets[name] = ipset
        return
    if name in sets:
        raise param_error({"name": f"IPSet '{name}' already exists"})
    sets[name] = IpSet(name, comment=str(req.params.get("comment") or ""))


@ROUTES.add("GET", "/cluster/firewall/ipset/{name}")
def ipset_entries(api: Api, req: Request) -> list[dict[str, Any]]:
    ipset = _ipset(api, str(req.params["name"]))
    digest = config_digest({"entries": repr(ipset.entries)})
    return [{**e, "digest": digest} for e in ipset.entries]


@ROUTES.add("POST", "/cluster/firewall/ipset/{name}")
def add_ipset_entry(api: Api, req: Request) -> None:
    ipset = _ipset(api, str(req.params["name"]))
    cidr = str(req.params["cidr"])
    if cidr.endswith("/0"):
        raise param_error({"cidr": "a zero prefix is not allowed in ipset entries"})
    if any(e["cidr"] == cidr for e in ipset.entries):
        raise param_error({"cidr": f"address '{cidr}' already exists"})
    entry: dict[str, Any] = {"cidr": cidr}
    if req.params.get("comment") is not None:
        entry["comment"] = str(req.params["comment"])
    if req.params.get("nomatch") is not None:
        entry["nomatch"] = int(req.params["nomatch"])
    ipset.entries.append(entry)


@ROUTES.add("DELETE", "/cluster/firewall/ipset/{name}")
def delete_ipset(api: Api, req: Request) -> None:
    name = str(req.params["name"])
    ipset = _ipset(api, name)
    if ipset.entries and str(req.params.get("force", "0")) != "1":
        raise die(f"IPSet '{name}' is not empty")
    del api.state.firewall.ipsets[name]


def _ipset_entry(api: Api, req: Request) -> tuple[IpSet, dict[str, Any]]:
    ipset = _ipset(api, str(req.params["name"]))
    cidr = str(req.params["cidr"])
    for entry in ipset.entries:
        if entry["cidr"] == cidr:
            return ipset, entry
    raise param_error({"cidr": "no such IP/Network"})  # IPSet.pm read_ip/update_ip: raise_param_exc, a 400


@ROUTES.add("GET", "/cluster/firewall/ipset/{name}/{cidr}")
def get_ipset_entry(api: Api, req: Request) -> dict[str, Any]:
    return dict(_ipset_entry(api, req)[1])


@ROUTES.add("PUT", "/cluster/firewall/ipset/{name}/{cidr}")
def set_ipset_entry(api: Api, req: Request) -> None:
    _, entry = _ipset_entry(api, req)
    if req.params.get("comment") is not None:
        entry["comment"] = str(req.params["comment"])
    if req.params.get("nomatch") is not None:
        entry["nomatch"] = int(req.params["nomatch"])


@ROUTES.add("DELETE", "/cluster/firewall/ipset/{name}/{cidr}")
def del_ipset_entry(api: Api, req: Request) -> None:
    # IPSet.pm remove_ip keeps every entry but the one named: a missing entry is no error
    ipset = _ipset(api, str(req.params["name"]))
    digest = opt_str(req.params, "digest")
    if digest and digest != config_digest({"entries": repr(ipset.entries)}):
        raise die(DIGEST_MISMATCH)
    ipset.entries[:] = [e for e in ipset.entries if e["cidr"] != str(req.params["cidr"])]


# -- per-VM firewall ------------------------------------------------------------------------------


def _vm_scope(api: Api, req: Request) -> int:
    from .qemu import get_vm

    return get_vm(api, req.params["vmid"]).vmid


def _vm_rules(api: Api, req: Request) -> list[dict[str, Any]]:
    return api.state.firewall.vm_rules.setdefault(_vm_scope(api, req), [])


def _vm_options(api: Api, req: Request) -> dict[str, Any]:
    return api.state.firewall.vm_options.setdefault(_vm_scope(api, req), {})


VM_FW = "/nodes/{node}/qemu/{vmid}/firewall"


@ROUTES.add("GET", VM_FW)
def vm_fw_index(api: Api, req: Request) -> list[dict[str, str]]:
    _vm_scope(api, req)
    return [{"name": n} for n in ("rules", "aliases", "ipset", "options", "refs", "log")]


serve_options(VM_FW, _vm_options)
serve_rules(VM_FW, _vm_rules, env="vm")


# -- the node's own firewall (host.fw) ------------------------------------------------------------

NODE_FW = "/nodes/{node}/firewall"


def _node_options(api: Api, req: Request) -> dict[str, Any]:
    return api.state.firewall.node_options.setdefault(str(req.params["node"]), {})


def _node_rules(api: Api, req: Request) -> list[dict[str, Any]]:
    return api.state.firewall.node_rules.setdefault(str(req.params["node"]), [])


@ROUTES.add("GET", NODE_FW)
def node_fw_index(api: Api, req: Request) -> list[dict[str, str]]:
    return [{"name": n} for n in ("rules", "options", "log")]


serve_options(NODE_FW, _node_options)
serve_rules(NODE_FW, _node_rules, env="host")


# -- aliases (cluster.fw [ALIASES]) ---------------------------------------------------------------
# Aliases.pm: kept by lower-case name, listed sorted by it with the digest of the whole list; each entry as
# parse_alias reads it back from the file: name as written, cidr, ipversion, comment when set.


def _alias_listing(api: Api) -> list[dict[str, Any]]:
    aliases = [api.state.firewall.aliases[k] for k in sorted(api.state.firewall.aliases)]
    digest = config_digest({str(i): repr(sorted(a.items())) for i, a in enumerate(aliases)})
    return [{**a, "digest": digest} for a in aliases]


def _alias_digest(api: Api, params: dict[str, Any]) -> None:
    digest = opt_str(params, "digest")
    listing = _alias_listing(api)
    if digest and digest != (listing[0]["digest"] if listing else config_digest({})):
        raise die(DIGEST_MISMATCH)


def _alias_data(params: dict[str, Any]) -> dict[str, Any]:
    cidr = str(params["cidr"])
    network = ipaddress.ip_network(cidr, strict=False)
    data: dict[str, Any] = {"name": str(params["name"]), "cidr": cidr, "ipversion": network.version}
    if params.get("comment"):
        data["comment"] = str(params["comment"])
    return data


@ROUTES.add("GET", "/cluster/firewall/aliases")
def list_aliases(api: Api, req: Request) -> list[dict[str, Any]]:
    return _alias_listing(api)


@ROUTES.add("POST", "/cluster/firewall/aliases")
def create_alias(api: Api, req: Request) -> None:
    key = str(req.params["name"]).lower()
    if key in api.state.firewall.aliases:
        raise param_error({"name": f"alias '{req.params['name']}' already exists"})
    api.state.firewall.aliases[key] = _alias_data(req.params)


@ROUTES.add("GET", "/cluster/firewall/aliases/{name}")
def get_alias(api: Api, req: Request) -> dict[str, Any]:
    key = str(req.params["name"]).lower()
    for entry in _alias_listing(api):
        if entry["name"].lower() == key:
            return entry
    raise param_error({"name": "no such alias"})


@ROUTES.add("PUT", "/cluster/firewall/aliases/{name}")
def update_alias(api: Api, req: Request) -> None:
    aliases = api.state.firewall.aliases
    _alias_digest(api, req.params)
    key = str(req.params["name"]).lower()
    if key not in aliases:
        raise param_error({"name": "no such alias"})
    data = _alias_data(req.params)
    rename = opt_str(req.params, "rename")
    if rename and rename.lower() != key:
        if rename.lower() in aliases:
            raise param_error({"name": f"alias '{rename}' already exists"})
        del aliases[key]
        key, data["name"] = rename.lower(), rename
    aliases[key] = data


@ROUTES.add("DELETE", "/cluster/firewall/aliases/{name}")
def delete_alias(api: Api, req: Request) -> None:
    _alias_digest(api, req.params)
    api.state.firewall.aliases.pop(str(req.params["name"]).lower(), None)  # a missing alias is no error


# -- a VNet's firewall (PVE 9: sdn/firewall/<vnet>.fw, forward rules only) -----------------------------------

VNET_FW = "/cluster/sdn/vnets/{vnet}/firewall"


def _vnet_scope(api: Api, req: Request) -> str:
    vnet = str(req.params["vnet"])
    if vnet not in api.state.sdn.pending.vnets and vnet not in api.state.sdn.running.vnets:
        raise die(f"sdn vnet '{vnet}' does not exist")
    return vnet


@ROUTES.add("GET", VNET_FW)
def vnet_fw_index(api: Api, req: Request) -> list[dict[str, str]]:
    _vnet_scope(api, req)
    return [{"name": n} for n in ("rules", "options")]


def _vnet_options(api: Api, req: Request) -> dict[str, Any]:
    return api.state.firewall.vnet_options.setdefault(_vnet_scope(api, req), {})


def _vnet_rules(api: Api, req: Request) -> list[dict[str, Any]]:
    return api.state.firewall.vnet_rules.setdefault(_vnet_scope(api, req), [])


serve_options(VNET_FW, _vnet_options)
serve_rules(VNET_FW, _vnet_rules, env="vnet")
