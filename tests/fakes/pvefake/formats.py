"""Named formats of the PVE API schema.

The schema file names formats (`pve-vmid`, `dns-name`, ...) without defining them; PVE defines them
in Perl (pve-common JSONSchema.pm, pve-access-control, pve-network, qemu-server, pve-firewall). The
validators here implement the ones the fake's routes use, with PVE's error texts. A failing
validator raises `FormatError` whose text is what Perl's `$@` would hold, trailing newline included,
because PVE puts it verbatim behind `invalid format - `.

Formats that are hashes (property strings such as `pve-qm-ipconfig`) live in `HASH_FORMATS`; the
checker parses them like inline-dict formats. Unknown format names are accepted: the fake cannot
know every storage or Ceph format, and rejecting them would make the fake stricter than PVE.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from .privileges import valid_privileges


class FormatError(Exception):
    """A format check failed; `text` is the Perl `$@` (ends with a newline, may span lines)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


Validator = Callable[[str, str], None]  # (value, pve_version) -> None or raise FormatError


def split_list(text: str) -> list[str]:
    """PVE::Tools::split_list: NUL-separated if any NUL, else split on commas, semicolons, blanks."""
    if "\0" in text:
        return text.split("\0")
    return re.sub(r"[,;]", " ", text).split()


def _fail(message: str) -> FormatError:
    return FormatError(message + "\n")


def is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def is_ipv6(text: str) -> bool:
    if "%" in text:  # Python accepts scope ids; PVE's IPV6RE does not
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _cidr_ok(text: str, family: int) -> bool:
    addr, slash, mask = text.partition("/")
    if not slash or not mask.isdigit():
        return False
    bits = int(mask)
    if family == 4:
        return is_ipv4(addr) and 7 < bits <= 32
    return is_ipv6(addr) and 7 < bits <= 128


_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
DNS_NAME_RE = re.compile(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$")
NODE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
USER_RE = r"[^\s:/]+"
REALM_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
USERID_RE = re.compile(rf"^({USER_RE})@({REALM_RE})$")
TOKENID_RE = re.compile(rf"^({USER_RE}@{REALM_RE})!({REALM_RE})$")
SDN_ID_RE = re.compile(r"^[a-z][a-z0-9]*[a-z0-9]$", re.IGNORECASE)
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
UNRESERVED_URL_RE = re.compile(r"^[-%a-zA-Z0-9_.!~*'()]*$")


def v_vmid(value: str, _v: str) -> None:
    if not re.fullmatch(r"[1-9][0-9]{2,8}", value):
        raise _fail("value does not look like a valid VM ID")


def v_node(value: str, _v: str) -> None:
    if not NODE_RE.match(value):
        raise _fail("value does not look like a valid node name")


def _parse_id(kind: str) -> Validator:
    def check(value: str, _v: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]", value, re.IGNORECASE):
            raise _fail(f"{kind} ID '{value}' contains illegal characters")

    return check


def v_bridge(value: str, _v: str) -> None:
    if not re.fullmatch(r"[-_.\w]+", value):
        raise _fail(f"invalid bridge ID '{value}'")


def v_configid(value: str, _v: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_-]+", value, re.IGNORECASE):
        raise _fail(f"invalid configuration ID '{value}'")


def v_urlencoded(value: str, _v: str) -> None:
    if not UNRESERVED_URL_RE.match(value):
        raise _fail(f"invalid urlencoded string: {value}")


def v_mac(value: str, _v: str) -> None:
    # PVE refuses MACs with the I/G (multicast) bit set.
    if not re.fullmatch(r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}", value, re.IGNORECASE):
        raise _fail("value does not look like a valid unicast MAC address")


def v_ipv4(value: str, _v: str) -> None:
    if not is_ipv4(value):
        raise _fail("value does not look like a valid IPv4 address")


def v_ipv6(value: str, _v: str) -> None:
    if not is_ipv6(value):
        raise _fail("value does not look like a valid IPv6 address")


def v_ip(value: str, _v: str) -> None:
    if not (is_ipv4(value) or is_ipv6(value)):
        raise _fail("value does not look like a valid IP address")


def v_cidr(value: str, _v: str) -> None:
    if not (_cidr_ok(value, 4) or _cidr_ok(value, 6)):
        raise _fail("value does not look like a valid CIDR network")


def v_cidrv4(value: str, _v: str) -> None:
    if not _cidr_ok(value, 4):
        raise _fail("value does not look like a valid IPv4 CIDR network")


def v_cidrv6(value: str, _v: str) -> None:
    if not _cidr_ok(value, 6):
        raise _fail("value does not look like a valid IPv6 CIDR network")


def v_ip_or_cidr(value: str, _v: str) -> None:
    if not (is_ipv4(value) or is_ipv6(value) or _cidr_ok(value, 4) or _cidr_ok(value, 6)):
        raise _fail("value does not look like a valid IP address or CIDR network")


def v_ip_cidr_alias(value: str, version: str) -> None:
    # pve-firewall: an alias name (optionally dc/ or guest/ scoped) is also accepted here.
    if re.fullmatch(r"(?:(?:dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+", value):
        return
    v_ip_or_cidr(value, version)


def v_ipv4_config(value: str, _v: str) -> None:
    if value in ("dhcp", "manual") or _cidr_ok(value, 4):
        return
    raise _fail("value does not look like a valid ipv4 network configuration")


def v_ipv6_config(value: str, _v: str) -> None:
    if value in ("auto", "dhcp", "manual") or _cidr_ok(value, 6):
        return
    raise _fail("value does not look like a valid ipv6 network configuration")


def v_dns_name(value: str, _v: str) -> None:
    if not DNS_NAME_RE.match(value):
        raise _fail("value does not look like a valid DNS name")


def v_address(value: str, _v: str) -> None:
    if not (is_ipv4(value) or is_ipv6(value) or DNS_NAME_RE.match(value)):
        raise _fail(f"value does not look like a valid address: {value}")


def v_iface(value: str, _v: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,20}([:.]\d+)?", value, re.IGNORECASE):
        raise _fail(f"invalid network interface name '{value}'")


def v_disk_size(value: str, _v: str) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?[KMGT]?", value):
        raise _fail(f"value does not look like a valid disk size: {value}")


def v_tag(value: str, _v: str) -> None:
    if not TAG_RE.match(value):
        raise _fail("invalid characters in tag")


def v_userid(value: str, _v: str) -> None:
    if len(value) < 3:
        raise _fail(f"user name '{value}' is too short")
    if len(value) > 64:
        raise _fail(f"user name '{value}' is too long ({len(value)} > 64)")
    if not USERID_RE.match(value):
        raise _fail(f"value '{value}' does not look like a valid user name")


def v_tokenid(value: str, _v: str) -> None:
    if not TOKENID_RE.match(value):
        raise _fail(f"value '{value}' does not look like a valid token ID")


def v_realm(value: str, _v: str) -> None:
    if not re.fullmatch(REALM_RE, value):
        raise _fail(f"realm ID '{value}' contains illegal characters")


def v_groupid(value: str, _v: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9.\-_]+", value):
        raise _fail(f"group name '{value}' contains invalid characters")


def v_roleid(value: str, _v: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9.\-_]+", value):
        raise _fail(f"role name '{value}' contains invalid characters")


def v_poolid(value: str, _v: str) -> None:
    # Nested pools (PVE >= 8.1) are `parent/child`, at most three levels.
    parts = value.split("/")
    if len(parts) > 3:
        raise _fail(f"pool name '{value}' nested too deeply (max levels = 3)")
    if not all(re.fullmatch(r"[A-Za-z0-9.\-_]+", p) for p in parts):
        raise _fail(f"pool name '{value}' contains invalid characters")


def v_priv(value: str, version: str) -> None:
    if value not in valid_privileges(version):
        raise _fail(f"invalid privilege '{value}'")


def _sdn_id(kind: str, max_len: int) -> Validator:
    def check(value: str, _v: str) -> None:
        if not SDN_ID_RE.match(value):
            raise _fail(f"{kind} ID '{value}' contains illegal characters")
        if len(value) > max_len:
            raise _fail(f"{kind} ID '{value}' can't be more length than {max_len} characters")

    return check


def v_sdn_subnet_id(value: str, _v: str) -> None:
    # POST takes `10.0.0.0/24`; GET/PUT/DELETE take the stored id `<zone>-10.0.0.0-24`.
    if "/" in value:
        cidr = value
    else:
        parts = value.split("-")
        cidr = f"{parts[1]}/{parts[2]}" if len(parts) >= 3 else ""
    if not (_cidr_ok(cidr, 4) or _cidr_ok(cidr, 6)):
        raise _fail("value does not look like a valid CIDR network")


def v_startup(value: str, _v: str) -> None:
    for part in value.split(","):
        if part.strip() and not re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", part):
            raise _fail("unable to parse startup options")


def v_email(value: str, _v: str) -> None:
    if not re.fullmatch(r"[\w+\-~]+(\.[\w+\-~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*", value):
        raise _fail("value does not look like a valid email address")


def v_volume(value: str, _v: str) -> None:
    # Disk specs: `storage:volume`, a path, `none`, `cdrom`, or `storage:size` for new disks.
    if value in ("none", "cdrom") or value.startswith("/"):
        return
    if re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]:.+", value, re.IGNORECASE):
        return
    raise _fail(f"unable to parse volume ID '{value}'")


_FW_ADDR_ITEM = re.compile(r"(?:(?:dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+")


def v_fw_addr(value: str, version: str) -> None:
    # pve-firewall address spec: +ipset, an alias, or a comma list of IPs/CIDRs/ranges.
    if value.startswith("+"):
        if not re.fullmatch(r"\+(?:(?:dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+", value):
            raise _fail(f"invalid ipset name '{value}'")
        return
    if _FW_ADDR_ITEM.fullmatch(value):
        return
    for item in value.split(","):
        ends = item.split("-")
        ok = (
            all(is_ipv4(e) or is_ipv6(e) for e in ends)
            if len(ends) == 2
            else (is_ipv4(item) or is_ipv6(item) or _cidr_ok(item, 4) or _cidr_ok(item, 6))
        )
        if not ok:
            raise _fail(f"invalid address '{item}'")


def v_fw_port(value: str, _v: str) -> None:
    for item in value.split(","):
        ends = item.split(":")
        if len(ends) > 2 or not all(_port_ok(e) for e in ends):
            raise _fail(f"invalid port '{item}'")


def _port_ok(text: str) -> bool:
    if text.isdigit():
        return 0 <= int(text) <= 65535
    return bool(re.fullmatch(r"[a-z][a-z0-9\-+]*", text, re.IGNORECASE))


def v_fw_proto(value: str, _v: str) -> None:
    if not re.fullmatch(r"\d{1,3}|[a-z][a-z0-9\-+.]*", value, re.IGNORECASE):
        raise _fail(f"unknown protocol '{value}'")


def v_any(_value: str, _v: str) -> None:
    return None


NAMED: dict[str, Validator] = {
    "string": v_any,
    "urlencoded": v_urlencoded,
    "pve-configid": v_configid,
    "pve-storage-id": _parse_id("storage"),
    "pve-bridge-id": v_bridge,
    "pve-vmid": v_vmid,
    "pve-node": v_node,
    "mac-addr": v_mac,
    "ipv4": v_ipv4,
    "ipv6": v_ipv6,
    "ip": v_ip,
    "CIDR": v_cidr,
    "CIDRv4": v_cidrv4,
    "CIDRv6": v_cidrv6,
    "IPorCIDR": v_ip_or_cidr,
    "IPorCIDRorAlias": v_ip_cidr_alias,
    "pve-ipv4-config": v_ipv4_config,
    "pve-ipv6-config": v_ipv6_config,
    "dns-name": v_dns_name,
    "address": v_address,
    "pve-iface": v_iface,
    "disk-size": v_disk_size,
    "pve-tag": v_tag,
    "pve-userid": v_userid,
    "pve-tokenid": v_tokenid,
    "pve-realm": v_realm,
    "pve-groupid": v_groupid,
    "pve-roleid": v_roleid,
    "pve-poolid": v_poolid,
    "pve-priv": v_priv,
    "pve-sdn-zone-id": _sdn_id("zone", 8),
    "pve-sdn-vnet-id": _sdn_id("vnet", 8),
    "pve-sdn-controller-id": _sdn_id("controller", 64),
    "pve-sdn-ipam-id": _sdn_id("ipam", 10),
    "pve-sdn-dns-id": _sdn_id("dns", 10),
    "pve-sdn-subnet-id": v_sdn_subnet_id,
    "pve-startup-order": v_startup,
    "email": v_email,
    "pve-volume-id-or-qm-path": v_volume,
    "pve-volume-id": v_volume,
    "pve-fw-addr-spec": v_fw_addr,
    "pve-fw-dport-spec": v_fw_port,
    "pve-fw-sport-spec": v_fw_port,
    "pve-fw-protocol-spec": v_fw_proto,
    "pve-fw-icmp-type-spec": v_any,
}

# Property-string formats registered by name (qemu-server's cloud-init IP configuration).
HASH_FORMATS: dict[str, dict[str, dict[str, object]]] = {
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "format": "pve-ipv4-config", "optional": 1},
        "gw": {"type": "string", "format": "ipv4", "optional": 1},
        "ip6": {"type": "string", "format": "pve-ipv6-config", "optional": 1},
        "gw6": {"type": "string", "format": "ipv6", "optional": 1},
    },
}


def split_format_name(name: str) -> tuple[str, str]:
    """`pve-vmid-list` -> (`pve-vmid`, `list`); `email-opt` -> (`email`, `opt`); else (name, `none`)."""
    m = re.match(r"^(.*?)(?:-(list|opt))?$", name)
    assert m is not None
    return m.group(1), m.group(2) or "none"


def check_named(name: str, value: str, version: str) -> None:
    """Check a scalar named format (with `-list`/`-opt` handling); hash formats are not handled here."""
    base, kind = split_format_name(name)
    validator = NAMED.get(base)
    if validator is None:
        validator = NAMED.get(name)  # a few names genuinely end in -list/-opt
        kind = "none"
    if validator is None:
        return
    if kind == "list":
        for item in split_list(value):
            validator(item, version)
    elif kind == "opt":
        if value:
            validator(value, version)
    else:
        validator(value, version)
