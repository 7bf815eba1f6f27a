"""The site file as typed data: what a sysadmin declares in inventories/<site>/site.yml."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from provisioner.site.sshkeys import check_public_key
from provisioner.site.vocabulary import COLOURS, HOST_ROLES, TEMPLATES, known

NAME_RE = r"^[a-z][a-z0-9]{0,7}$"
HOST_RE = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
USER_RE = r"^[a-z_][a-z0-9_-]{0,30}$"
CONTROL_RE = r"^[A-Z]{3,4}-[0-9]{1,2}$"
CONTROL_OR_FAMILY_RE = r"^[A-Z]{3,4}(-[0-9]{1,2})?$"
DURATION_RE = r"^[1-9][0-9]{0,5}[smhd]$"
WATCH_NAME_RE = r"^[a-z][a-z0-9-]{0,30}$"

# How each name pattern reads to a person, for error messages.
PATTERN_HELP = {
    NAME_RE: "1-8 lower-case letters or digits, starting with a letter (it becomes an interface name)",
    HOST_RE: "2-32 lower-case letters, digits or '-', starting with a letter",
    USER_RE: "a Unix user name: lower-case letters, digits, '_' or '-', at most 31 characters",
    CONTROL_RE: "a control ID such as ACC-1 or NET-2",
    CONTROL_OR_FAMILY_RE: "a control ID such as NET-2, or a family such as NET",
    DURATION_RE: "a whole number and s, m, h or d, such as 20s or 1h",
    WATCH_NAME_RE: "lower-case letters, digits or '-', starting with a letter, at most 31 characters",
    r"^[a-z][a-z0-9]{1,11}$": "2-12 lower-case letters or digits, starting with a letter",
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$": "letters, digits, '.', '_' or '-', at most 64 characters",
    r"^[a-z_][a-z0-9_]{0,62}$": "a plain SQL name: lower-case letters, digits or '_', at most 63 characters",
    r"^/[A-Za-z0-9._/-]*$": "an absolute path of letters, digits, '.', '_', '-' and '/'",
}

EnvName = Annotated[str, Field(pattern=NAME_RE, description="2-8 lower-case letters/digits, starts with a letter")]
SiteName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,11}$")]
HostName = Annotated[str, Field(pattern=HOST_RE)]
UserName = Annotated[str, Field(pattern=USER_RE)]

SshPublicKey = Annotated[str, AfterValidator(check_public_key)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


ShortId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,7}$")]


class Segment(Strict):
    vlan: int = Field(ge=1, le=4094, description="802.1Q VLAN id (Proxmox VNet tag, OVS portgroup tag)")
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    vnet: ShortId | None = Field(default=None, description="Proxmox SDN VNet id; default: derived from env and site")


class Environment(Strict):
    name: EnvName
    tier: Literal["development", "test", "production"]
    segment: Segment
    colour: Annotated[str, AfterValidator(known("colour", COLOURS))]
    data: Literal["dummy", "anonymised", "live"]
    description: str = ""


class AccessNetwork(Strict):
    """Where people's workstations are: a network of its own, a leg of the environment gateway, from which SSH
    (and nothing else) reaches the hosts of the environments it names. Management is for the controller and the
    admins only; developers and testers sit on an access network."""

    name: EnvName
    cidr: ipaddress.IPv4Network
    reaches: list[str] = Field(min_length=1, description="environments whose hosts accept SSH from this network")
    admins_only: bool = Field(
        default=False, description="only people with the admin role sit here; needed to reach a production environment"
    )
    description: str = ""
    gateway: ipaddress.IPv4Address | None = Field(
        default=None, description="the environment gateway's address here; default: the network's first usable one"
    )
    vlan: int | None = Field(default=None, ge=1, le=4094, description="802.1Q VLAN id (hypervisor backends)")
    vnet: ShortId | None = Field(default=None, description="Proxmox SDN VNet id; default: derived from name and site")

    @property
    def gateway_address(self) -> ipaddress.IPv4Address:
        """The gateway's leg here: as declared, or the network's first usable address."""
        return self.gateway if self.gateway is not None else self.cidr.network_address + 1


HostRoleName = Annotated[str, AfterValidator(known("host role", HOST_ROLES))]


class Host(Strict):
    name: HostName
    environment: str
    address: ipaddress.IPv4Address
    roles: list[HostRoleName] = Field(default_factory=list)
    size: Literal["small", "medium", "large"] = "small"
    template: Annotated[str, AfterValidator(known("template", TEMPLATES))] = "debian12"

    @field_validator("roles")
    @classmethod
    def _roles_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a host role is listed twice; allowed: each role once")
        return value


class AccessGrant(Strict):
    """Access beyond what a person's roles give; production grants need a waiver (ACC-7)."""

    environment: str
    level: Literal["login", "sudo"]
    waiver: str | None = None


class Person(Strict):
    name: UserName
    full_name: str = ""
    roles: list[Literal["developer", "tester", "admin", "approver"]] = Field(min_length=1)
    ssh_key: SshPublicKey
    access: list[AccessGrant] = Field(default_factory=list)


class DeployIdentity(Strict):
    name: UserName = "deploy"
    ssh_key: SshPublicKey
    environments: list[str] | None = Field(
        default=None, description="environments it deploys to; default: every environment of the release path"
    )
    key_file: str | None = Field(
        default=None,
        description="its private key on the controller (relative to the site file): `release deploy` uses it",
    )


class Flow(Strict):
    """A permitted path between two environments; everything not declared is denied."""

    from_env: str = Field(alias="from")
    to_env: str = Field(alias="to")
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(min_length=1)
    proto: Literal["tcp", "udp"] = "tcp"
    to_roles: list[str] = Field(default_factory=list, description="only to hosts with one of these roles")
    description: str = ""


class HotfixRule(Strict):
    """Emergency fixes: the same path (test, and a passing verify there, before production), but the approvals
    may follow the production deploy within a deadline instead of coming before it (CHG-2)."""

    approvals_within_hours: int = Field(ge=1, le=168, description="hours after the production deploy")


class ReleaseRules(Strict):
    path: list[str] = Field(default_factory=lambda: ["dev", "test", "prod"], min_length=1)
    required_approvals: int = Field(default=1, ge=1, le=9)
    hotfix: HotfixRule | None = Field(default=None, description="emergency fixes; none: every fix takes the path")


PORT_HELP = "a port number 1-65535, or a number and protocol such as 9/udp"


def _waiver_port(value: object) -> str:
    """A waiver's port as NET-2 rows name it: '<number>/<tcp|udp>' (a bare number is TCP)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        number, _, proto = text.partition("/")
        digits = number.isascii() and number.isdigit() and len(number) <= 5
        if digits and 1 <= int(number) <= 65535 and proto in ("", "tcp", "udp"):
            return f"{int(number)}/{proto or 'tcp'}"
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    raise ValueError(f"{shown} is not allowed; allowed: {PORT_HELP}")


WaiverPort = Annotated[str, BeforeValidator(_waiver_port)]

# Scope keys added after waivers were first signed: left out of a waiver's content when unset, so the content an
# approver signed before they existed (releases.decisions.content_digest) is still the content it has now.
LATER_SCOPE_KEYS = ("host", "source", "destination", "port")


class Waiver(Strict):
    """An exception (ACC-7) to one control, for exactly the results its scope names: each scope key given narrows
    it, and a result is waived only when every failure in it lies inside the scope (conformance/waivers.py).

    - person: results about that person (a developer whose key is tried, a person's account or rights);
    - environment: results whose subject host is in that environment; for a NET-2 path, its source environment
      (the environment the probe runs from), never its destination;
    - host: results whose subject host is that host (for a NET-2 path: the host the probe runs from);
    - source, destination, port: NET-2 paths only, from the source environment to the destination environment on
      that port.

    NET-2 and ACC-2 results in production are never waived: site validation refuses a scope that could reach them.
    """

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    control: Annotated[str, Field(pattern=CONTROL_RE)]
    person: str | None = None
    environment: str | None = None
    justification: str = Field(min_length=10)
    requester: str
    approver: str
    risk: Literal["low", "medium", "high"]
    expires: dt.date
    compensating: list[str] = Field(default_factory=list)
    # narrower scopes (after the fields above, so the order of keys people already know stays)
    host: str | None = Field(default=None, description="only results whose subject host is this host")
    source: str | None = Field(default=None, description="NET-2: only paths from this environment")
    destination: str | None = Field(default=None, description="NET-2: only paths into this environment")
    port: WaiverPort | None = Field(default=None, description="NET-2: only paths on this port")

    @model_serializer(mode="wrap")
    def _content(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in LATER_SCOPE_KEYS:
            if data.get(key) is None:
                data.pop(key, None)
        return data

    def scope_words(self) -> str:
        """The scope as people read it, such as 'person alice, environment test' or 'from dev to test, port 80/tcp'."""
        parts = [f"{key} {value}" for key, value in (("person", self.person), ("environment", self.environment),
                                                     ("host", self.host)) if value]  # fmt: skip
        if self.source or self.destination:
            parts.append(f"from {self.source or 'any environment'} to {self.destination or 'any environment'}")
        if self.port:
            parts.append(f"port {self.port}")
        return ", ".join(parts) or f"every result of {self.control}"


class OutOfScope(Strict):
    """An attempt of the conformance suite the site does not make, declared with its reason and who decided it:
    verify does not fail for its absence, and the report says it was not attempted and why."""

    control: Annotated[str, Field(pattern=CONTROL_RE)]
    reason: str = Field(min_length=10)
    decided_by: str


FAKE_KINDS = ("name", "first_name", "last_name", "email", "phone", "street", "city", "postcode", "date", "iban", "text")
RULE_HELP = "hash | null | keep | replace:<text> | fake:<kind> (kinds: " + ", ".join(FAKE_KINDS) + ")"


def _check_rule(value: str) -> str:
    kind, _, arg = value.partition(":")
    if kind in ("hash", "null", "keep") and not arg:
        return value
    if kind == "replace" and ":" in value:
        return value
    if kind == "fake" and arg in FAKE_KINDS:
        return value
    raise ValueError(f"rule '{value}' is not allowed; allowed: {RULE_HELP}")


ColumnRule = Annotated[str, AfterValidator(_check_rule)]
SqlName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class DataAuthorisation(Strict):
    """A recorded authorisation to copy production data into a test environment through the anonymiser."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    from_env: str = Field(alias="from")
    to_env: str = Field(alias="to")
    requester: str
    approver: str
    reason: str = Field(min_length=10)
    scrub_by: dt.date = Field(description="the copied data must be scrubbed by this date (DATA-3)")

    @field_validator("approver")
    @classmethod
    def _not_self_approved(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("requester"):
            raise ValueError(
                f"'{value}' cannot approve their own request; allowed: an approver or admin other than the requester"
            )
        return value


class DataScanSettings(Strict):
    sample_rows: int = Field(default=10_000, ge=10, le=10_000_000, description="rows read per table")
    folders: list[Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")]] = Field(
        default_factory=lambda: ["/srv/data"], description="data folders scanned on every host of the environment"
    )
    max_file_kib: int = Field(default=1024, ge=1, le=1_048_576, description="bytes read per file, KiB")


class DataSettings(Strict):
    """Test-data rules (DATA-1..3): seeding, the anonymiser's column rules, refresh authorisations, the scan."""

    seed: int = Field(default=8031, ge=0, description="Faker seed of the synthetic data")
    customers: int = Field(default=200, ge=1, le=1_000_000, description="synthetic customers seeded")
    rules: dict[SqlName, dict[SqlName, ColumnRule]] = Field(
        default_factory=dict, description="table -> column -> anonymiser rule"
    )
    authorisations: list[DataAuthorisation] = Field(default_factory=list)
    scan: DataScanSettings = Field(default_factory=DataScanSettings)

    def authorisation(self, ref: str) -> DataAuthorisation | None:
        return next((a for a in self.authorisations if a.id == ref), None)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WATCH_SECONDS = 20

Duration = Annotated[str, Field(pattern=DURATION_RE, description="a whole number and s, m, h or d, such as 20s or 1h")]


def duration_seconds(text: str) -> int:
    """Seconds of a Duration ('90s', '15m', '1h', '1d')."""
    return int(text[:-1]) * DURATION_UNITS[text[-1]]


class WatchSchedule(Strict):
    """One scheduled verification: which controls `provision watch` verifies, and how often."""

    name: Annotated[str, Field(pattern=WATCH_NAME_RE)]
    every: Duration = Field(description="how often the controls are verified; at least 20s")
    controls: list[Annotated[str, Field(pattern=CONTROL_OR_FAMILY_RE)]] = Field(
        default_factory=list, description="control IDs (NET-2) or families (NET); none: every control"
    )

    @property
    def seconds(self) -> int:
        return duration_seconds(self.every)


class WatchSettings(Strict):
    """Continuous verification: the schedules `provision watch install` sets up on the controller. The command
    that is told about failures is the controller's (`provision watch install --notify`), never the site file's."""

    schedules: list[WatchSchedule] = Field(min_length=1)
    grace: Duration = Field(
        default="5m", description="how late a scheduled run may finish before the time counts as not verified"
    )

    @property
    def grace_seconds(self) -> int:
        return duration_seconds(self.grace)


class Management(Strict):
    cidr: ipaddress.IPv4Network
    vlan: int | None = Field(default=None, ge=1, le=4094, description="VLAN of the management network (hypervisors)")
    vnet: ShortId | None = Field(default=None, description="Proxmox SDN VNet id of the management network")
    controller: ipaddress.IPv4Address = Field(description="the controller's address on the management bridge")
    gateway: ipaddress.IPv4Address = Field(description="the environment gateway's management address")


class LxcSettings(Strict):
    """The local LXC lab: bridges and containers on the controller itself."""

    type: Literal["lxc"] = "lxc"


class ProxmoxToken(Strict):
    """A Proxmox API token; its secret comes from an environment variable or a file of mode 0600."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$")] = Field(
        description="USER@REALM!TOKENID"
    )
    env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = "PROVISION_PVE_TOKEN"
    file: str | None = Field(default=None, description="file holding the token secret; must be mode 0600")


ApiEndpoint = Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")]
PveNode = Annotated[str, Field(pattern=r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")]
PveStorage = Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9._-]*$")]


class ProxmoxSize(Strict):
    """What a machine size gets on Proxmox besides cores and memory."""

    disk_gb: int | None = Field(
        default=None, ge=1, le=65536, description="size of the boot disk in GiB; it only grows the template's"
    )
    storage: PveStorage | None = Field(default=None, description="storage of the full clones of this size")


class ProxmoxSettings(Strict):
    """A Proxmox VE cluster reached through its REST API."""

    type: Literal["proxmox"]
    host: ApiEndpoint | Annotated[list[ApiEndpoint], Field(min_length=1)] = Field(
        description="host[:port] of a cluster node's API, or a list of them: the first that answers is used, and a "
        "call that cannot reach it moves to the next"
    )
    node: PveNode = Field(description="the node the template is on (and the VMs, unless `nodes` says otherwise)")
    token: ProxmoxToken
    verify_tls: bool = True
    ca_file: str | None = None
    template: int = Field(ge=100, le=999999999, description="VMID of the template the machines are cloned from")
    full_clone: bool = False
    storage: str | None = Field(default=None, description="target storage for full clones")
    nodes: list[PveNode] | None = Field(
        default=None, min_length=1, description="the nodes the VMs are spread over; default: [node]"
    )
    placement: dict[HostName, PveNode] = Field(
        default_factory=dict, description="host name -> node of `nodes` it is built on (the others are spread)"
    )
    sizes: dict[Literal["small", "medium", "large"], ProxmoxSize] = Field(
        default_factory=dict, description="per machine size: boot disk size and full clones' storage"
    )
    bridge: Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")] = "vmbr0"
    zone: ShortId | None = Field(default=None, description="SDN VLAN zone id; default: 'pv' + 4 hex of the site")
    realm: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9.-]{1,31}$")] = "pve"
    nameserver: ipaddress.IPv4Address | None = None
    datacenter_firewall: bool = Field(
        default=True,
        description="switch the datacenter firewall on, without which the security groups filter nothing; apply "
        "first admits the controller in the 'management' IP set and switches it back off if the API then refuses it",
    )
    task_timeout: int = Field(default=600, ge=5, le=7200, description="seconds to wait for one Proxmox task")
    shutdown_timeout: int = Field(
        default=180, ge=0, le=3600,
        description="seconds a VM gets to shut down cleanly (guest agent or ACPI) before an update or removal "
        "stops it hard; 0 stops at once; when not set, 180 or less than task_timeout",
    )  # fmt: skip

    @property
    def vm_nodes(self) -> list[str]:
        """The nodes VMs are placed on, in order."""
        return list(self.nodes) if self.nodes else [self.node]

    @property
    def endpoints(self) -> list[str]:
        """The API endpoints in the order they are tried."""
        return [self.host] if isinstance(self.host, str) else list(self.host)


class LibvirtSettings(Strict):
    """A KVM host managed through libvirt."""

    type: Literal["libvirt"]
    uri: str = "qemu:///system"
    network_mode: Literal["openvswitch", "bridge"] = "openvswitch"
    ovs_bridge: Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")] | None = None
    bridges: dict[str, Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")]] = Field(
        default_factory=dict, description="bridge mode: segment (environment or 'mgmt') -> host bridge per VLAN"
    )
    domain_type: Literal["kvm", "qemu"] = "kvm"
    pool: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "provisioner"
    pool_path: str = "/var/lib/provisioner/images"
    image: str | None = Field(default=None, description="base qcow2; default: the one `provision image build` made")
    tb_cache_mib: int = Field(default=128, ge=16, le=4096, description="TCG translation cache per guest (qemu type)")
    ovs_datapath: Literal["system", "netdev"] = Field(
        default="system", description="datapath of the bridge provision creates; netdev where openvswitch.ko is missing"
    )
    max_memory_mib: int | None = Field(
        default=None, ge=128, le=1048576, description="caps each guest's memory from its size (small TCG labs)"
    )


BACKEND_MODELS: dict[object, type[Strict]] = {
    "lxc": LxcSettings,
    "proxmox": ProxmoxSettings,
    "libvirt": LibvirtSettings,
}
BackendSettings = Annotated[LxcSettings | ProxmoxSettings | LibvirtSettings, Field(discriminator="type")]


class Site(Strict):
    site: SiteName
    description: str = ""
    backend: BackendSettings = Field(default_factory=LxcSettings)
    management: Management
    environments: list[Environment] = Field(min_length=1)
    access_networks: list[AccessNetwork] = Field(
        default_factory=list, description="where people's workstations are; none: only management reaches SSH"
    )
    hosts: list[Host] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    deploy: DeployIdentity | None = None
    flows: list[Flow] = Field(default_factory=list)
    releases: ReleaseRules = Field(default_factory=ReleaseRules)
    waivers: list[Waiver] = Field(default_factory=list)
    out_of_scope: list[OutOfScope] = Field(default_factory=list)
    test_data: DataSettings = Field(default_factory=DataSettings)
    watch: WatchSettings | None = Field(default=None, description="continuous verification; none: verify on demand")

    # ---- lookups used everywhere -------------------------------------------------------------
    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)

    def access_network(self, name: str) -> AccessNetwork:
        for network in self.access_networks:
            if network.name == name:
                return network
        raise KeyError(name)

    def hosts_in(self, env_name: str) -> list[Host]:
        return [h for h in self.hosts if h.environment == env_name]

    def person(self, name: str) -> Person | None:
        return next((p for p in self.people if p.name == name), None)

    def waiver(self, waiver_id: str) -> Waiver | None:
        return next((w for w in self.waivers if w.id == waiver_id), None)
