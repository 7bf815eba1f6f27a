"""`FakePve`: the public face of the fake — set up state, start/stop the HTTPS server, inspect."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from . import access, cluster, firewall, ha, lxc, pools, qemu, qemu_ops, sdn, volumes
from .api import Api, Route
from .checker import check_prop
from .faults import Faults
from .http import HttpsServer, make_self_signed
from .permissions import check_path
from .realize import NullRealizer, Realizer
from .recorder import RecordedRequest, Recorder
from .schema import Schema, SchemaUnavailable
from .state import AclKey, Bridge, Container, Group, HaResource, Pool, State, Storage, Token, User, Vm
from .storage_model import FILE_TYPES
from .vmconfig import normalize_tags, random_mac

log = logging.getLogger(__name__)

STORAGE_DEFAULTS = {
    "local": ("dir", "iso,vztmpl,backup,snippets"),
    "local-lvm": ("lvmthin", "images,rootdir"),
    "local-zfs": ("zfspool", "images,rootdir"),
}


def all_routes() -> dict[tuple[str, str], Route]:
    table: dict[tuple[str, str], Route] = {}
    for module in (cluster, qemu, qemu_ops, lxc, sdn, pools, access, firewall, ha, volumes):
        table.update(module.ROUTES.table)
    return table


class FakePve:
    """A stateful fake of one Proxmox VE node's REST API, validated against the official schema."""

    def __init__(
        self,
        schema_version: str = "9.1",
        node: str = "pve1",
        realizer: Realizer | None = None,
        faults: Faults | None = None,
        task_seconds: float = 0.3,
        validate: bool = True,
        schema_folder: Path | None = None,
        host: str = "127.0.0.1",
        ha_seconds: float = 0.5,
    ) -> None:
        self.schema_version = schema_version
        self.schema: Schema | None = None
        self.validation_note = "validation disabled by the caller (validate=False)"
        if validate:
            try:
                self.schema = Schema.load(schema_version, schema_folder)
                self.validation_note = f"validating against pve-api-{schema_version}.flat.json"
            except SchemaUnavailable as exc:
                # Still useful without the schema: every route the fake implements keeps working.
                self.validation_note = f"validation OFF: {exc}"
                log.warning("pvefake: %s", self.validation_note)
        self.state = State(node=node, version=schema_version)
        self.state.users["root@pam"] = User("root@pam")
        self._owns_realizer = realizer is None
        self.recorder = Recorder(schema_version)
        self.api = Api(
            self.state,
            self.schema,
            faults if faults is not None else Faults(),
            realizer if realizer is not None else NullRealizer(),
            self.recorder,
            task_seconds,
            all_routes(),
        )
        self.api.ha_seconds = ha_seconds
        self.host = host
        self.port = 0
        self._server: HttpsServer | None = None
        self._tmp: Path | None = None
        self.cert_path: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def validating(self) -> bool:
        return self.schema is not None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/api2/json"

    def start(self) -> FakePve:
        if self._server is not None:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="pvefake-"))
        self.cert_path, key_path = make_self_signed(self._tmp, self.host)
        self._server = HttpsServer(self.api, self.host, 0 if not self.port else self.port, self.cert_path, key_path)
        self.port = int(self._server.port)
        self._server.start()
        return self

    def stop(self, close_realizer: bool | None = None, task_timeout: float = 5.0) -> None:
        """Stop serving and wait for running task workers. The realizer is closed when the fake
        created it (the default NullRealizer); one passed in belongs to the caller unless
        `close_realizer=True`."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.api.tasks.wait_all(task_timeout)
        if close_realizer if close_realizer is not None else self._owns_realizer:
            self.realizer.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> FakePve:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- knobs -----------------------------------------------------------------------------------
    @property
    def faults(self) -> Faults:
        return self.api.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        # the API and the task runner must see the same object, even when a test swaps it
        self.api.faults = value
        self.api.tasks.faults = value

    @property
    def realizer(self) -> Realizer:
        return self.api.realizer

    @realizer.setter
    def realizer(self, value: Realizer) -> None:
        self.api.realizer = value

    # -- inspection ------------------------------------------------------------------------------
    @property
    def task_seconds(self) -> float:
        return self.api.tasks.task_seconds

    @task_seconds.setter
    def task_seconds(self, value: float) -> None:
        self.api.tasks.task_seconds = value

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.recorder.requests

    def refused_connections(self) -> list[tuple[str, str]]:
        """(peer, why) of each new connection the node's firewall refused (host_firewall.py)."""
        return list(self._server.server.refused) if self._server is not None else []

    def route_counts(self) -> Counter[tuple[str, str]]:
        return self.recorder.route_counts()

    def wait_tasks(self, timeout: float = 10.0) -> bool:
        return self.api.tasks.wait_all(timeout)

    # -- state setup -----------------------------------------------------------------------------
    def add_user(
        self, userid: str, password: str | None = None, groups: Iterable[str] = (), enable: bool = True
    ) -> User:
        with self.state.lock:
            user = self.state.users.get(userid) or User(userid)
            user.enable = enable
            if password is not None:
                user.password = password
            self.state.users[userid] = user
            for group in groups:
                self.add_group(group).members.add(userid)
            return user

    def add_token(self, userid: str, tokenid: str, privsep: bool = False, expire: int = 0) -> str:
        """Create (or replace) an API token and return its secret."""
        with self.state.lock:
            user = self.add_user(userid)
            secret = str(uuid.uuid4())
            user.tokens[tokenid] = Token(tokenid, secret=secret, privsep=privsep, expire=expire)
            return secret

    def add_group(self, groupid: str, members: Iterable[str] = (), comment: str = "") -> Group:
        with self.state.lock:
            group = self.state.groups.setdefault(groupid, Group(groupid, comment=comment))
            group.members.update(members)
            return group

    def add_role(self, roleid: str, privs: Iterable[str]) -> None:
        with self.state.lock:
            self.state.roles[roleid] = set(privs)

    def add_acl(
        self,
        path: str,
        roleid: str,
        *,
        user: str | None = None,
        group: str | None = None,
        token: str | None = None,
        propagate: bool = True,
    ) -> None:
        if not check_path(path):
            raise ValueError(f"invalid ACL path '{path}'")
        with self.state.lock:
            for kind, ugid in (("user", user), ("group", group), ("token", token)):
                if ugid:
                    self.state.acls[AclKey(path, kind, ugid, roleid)] = propagate

    def add_pool(self, poolid: str, comment: str = "", vms: Iterable[int] = ()) -> Pool:
        with self.state.lock:
            pool = self.state.pools.setdefault(poolid, Pool(poolid, comment=comment))
            pool.vms.update(vms)
            return pool

    def add_storage(
        self,
        name: str,
        type: str | None = None,
        content: str | None = None,
        shared: int = 0,
        *,
        disable: bool = False,
        active: bool = True,
        total_gib: int = 500,
        used_gib: int = 10,
        nodes: Iterable[str] | None = None,
    ) -> Storage:
        """A storage.cfg entry (`lvm`, `lvmthin`, `dir`, `nfs`, `zfspool`, `iscsi`, `rbd`...): what it can clone
        is its type's (pvefake.storage_model)."""
        default_type, default_content = STORAGE_DEFAULTS.get(name, ("dir", "images,rootdir,iso,vztmpl,backup"))
        with self.state.lock:
            store = Storage(
                name,
                type or default_type,
                content or default_content,
                shared,
                disable=disable,
                active=active,
                total=total_gib << 30,
                used=used_gib << 30,
                nodes=frozenset(nodes) if nodes is not None else None,
            )
            self.state.storages[name] = store
            return store

    def add_ha_resource(self, vmid: int, state: str = "started", comment: str = "") -> HaResource:
        """`ha-manager add vm:N --state <state>` done long ago: the CRM has seen it and the VM is in that state
        (a started resource's VM is running)."""
        with self.state.lock:
            vm = self.state.vms[vmid]
            if state == "started":
                vm.status = "running"
            res = HaResource(f"vm:{vmid}", state=state, comment=comment)
            if state != "ignored":
                res.crm_state = "started" if vm.status == "running" else "stopped"
            self.state.ha[res.sid] = res
            return res

    def move_vm(self, vmid: int, node: str) -> Vm:
        """What a (live) migration leaves: the VM, its state and its config on another member."""
        with self.state.lock:
            vm = self.state.vms[vmid]
            vm.node = self._node(node)
            return vm

    def add_bridge(self, name: str, vlan_aware: bool = True, nodes: Iterable[str] | None = None) -> Bridge:
        """A Linux bridge on every member, or only on `nodes` (names, the fake's own node among them or not)."""
        with self.state.lock:
            bridge = Bridge(name, vlan_aware, frozenset(nodes) if nodes is not None else None)
            self.state.bridges[name] = bridge
            return bridge

    def add_node(self, name: str, status: str = "online") -> None:
        """Another member of the cluster: listed by `GET /nodes`; while `online` its network and guests can be
        read, otherwise every call to it answers `595 No route to host` as pveproxy does for a node it cannot
        reach. It has the fake's bridges, except those `add_bridge` restricted to other nodes."""
        if status not in ("online", "offline", "unknown"):
            raise ValueError(f"node status '{status}': allowed online, offline, unknown")
        if name == self.state.node:
            raise ValueError(f"'{name}' is the fake's own node")
        with self.state.lock:
            self.state.other_nodes[name] = status

    def _node(self, node: str | None) -> str | None:
        if node is not None and node != self.state.node and node not in self.state.other_nodes:
            raise ValueError(f"no such cluster node '{node}' (add_node first)")
        return None if node == self.state.node else node

    def add_vm(
        self,
        vmid: int,
        config: dict[str, str],
        status: str = "stopped",
        pool: str | None = None,
        node: str | None = None,
    ) -> Vm:
        with self.state.lock:
            if vmid in self.state.containers:
                raise ValueError(f"VMID {vmid} is a container's")
            vm = Vm(vmid, dict(config), status=status, node=self._node(node))
            self.state.vms[vmid] = vm
            if pool:
                self.add_pool(pool).vms.add(vmid)
            return vm

    def add_lxc(
        self,
        vmid: int,
        hostname: str,
        nets: dict[int, str] | None = None,
        *,
        status: str = "stopped",
        node: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> Container:
        """A container as `pct create` leaves its config: `nets` maps N to the netN value
        (`name=eth0,bridge=vmbr0,ip=dhcp,tag=30`); a NIC without `hwaddr` gets one, as PVE generates it. Every key
        is checked against the schema's container config format (a value PVE would refuse raises ValueError)."""
        config = {
            "arch": "amd64",
            "hostname": hostname,
            "memory": "512",
            "swap": "512",
            "cores": "1",
            "ostype": "debian",
            "rootfs": f"local-lvm:vm-{vmid}-disk-0,size=8G",
            "unprivileged": "1",
        }
        for index, value in sorted((nets or {}).items()):
            parts = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
            config[f"net{index}"] = value if "hwaddr" in parts else f"{value},hwaddr={random_mac(self.api.rng)}"
        config.update(extra or {})
        self._check_config("PUT", "/nodes/{node}/lxc/{vmid}/config", config)
        with self.state.lock:
            if vmid in self.state.vms:
                raise ValueError(f"VMID {vmid} is a VM's")
            ct = Container(vmid, config, status=status, node=self._node(node))
            self.state.containers[vmid] = ct
            return ct

    def add_vlan_interface(
        self, iface: str, raw_device: str | None = None, vlan_id: int | None = None, node: str | None = None
    ) -> dict[str, object]:
        """A VLAN interface of a node's /etc/network/interfaces, listed as PVE's parser reads it: `vmbr0.30`
        (raw device and id from the name), `vlan30` with a raw device, or any other name with both (ifupdown2)."""
        entry: dict[str, object] = {"iface": iface, "type": "vlan", "method": "manual", "families": ["inet"],
                                    "active": 1, "autostart": 1, "exists": 1}  # fmt: skip
        dotted = re.fullmatch(r"(\S+)\.(\d+)", iface)
        numbered = re.fullmatch(r"vlan(\d+)", iface)
        if dotted:
            entry["vlan-raw-device"] = raw_device or dotted.group(1)
            entry["vlan-id"] = int(dotted.group(2))
        elif raw_device is None:
            raise ValueError(f"{iface}: missing vlan-raw-device option")
        else:
            entry["vlan-raw-device"] = raw_device
            if numbered:
                entry["vlan-id"] = int(numbered.group(1))
            elif vlan_id is None:
                raise ValueError(f"{iface}: missing vlan-id option")
            else:
                entry["vlan-id"] = vlan_id
        params = {"iface": iface, "type": "vlan", "vlan-raw-device": str(entry["vlan-raw-device"])}
        if not dotted and not numbered:
            params["vlan-id"] = str(entry["vlan-id"])
        self._check_config("POST", "/nodes/{node}/network", params)
        if not 1 <= int(str(entry["vlan-id"])) <= 4094:
            raise ValueError(f"vlan '{iface}' - vlan-id {entry['vlan-id']} should be <= 4094")
        with self.state.lock:
            where = self._node(node) or self.state.node
            self.state.interfaces[(where, iface)] = entry
            return entry

    def _check_config(self, method: str, template: str, values: dict[str, str]) -> None:
        """Values a test places directly, checked as the API would check them on the write that makes them."""
        if self.schema is None:
            return
        op = self.schema.operation(method, template)
        if op is None:
            return
        errors: dict[str, str] = {}
        for key, value in values.items():
            prop = self.schema.property_schema(op, key)
            if prop is None:
                errors[key] = "property is not defined in schema"
            else:
                check_prop(value, prop, key, errors, self.schema.version)
        if errors:
            raise ValueError(f"{template}: {errors}")

    def add_template(
        self,
        vmid: int,
        name: str = "debian12-cloud",
        *,
        storage: str = "local-lvm",
        bridge: str = "vmbr0",
        memory: int = 2048,
        cores: int = 2,
        disk_size: str = "8G",
        disk_format: str = "qcow2",
        tags: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> Vm:
        """A cloud-init template as `qm template` leaves it: scsi0 base disk, ide2 cloud-init drive,
        guest agent on, one virtio NIC, serial console. On a file storage (dir, nfs, cifs) the disk is a file,
        `disk_format` (qcow2 or raw) named as PVE names it: `<storage>:9000/base-9000-disk-0.qcow2`."""
        kind = self.state.storages[storage].type if storage in self.state.storages else "lvmthin"
        if kind in FILE_TYPES:
            base_volume = f"{vmid}/base-{vmid}-disk-0.{disk_format}"
            cloudinit = f"{vmid}/vm-{vmid}-cloudinit.qcow2"
        else:
            base_volume, cloudinit = f"base-{vmid}-disk-0", f"vm-{vmid}-cloudinit"
        with self.state.lock:
            config = {
                "name": name,
                "template": "1",
                "boot": "order=scsi0;ide2;net0",
                "cores": str(cores),
                "sockets": "1",
                "memory": str(memory),
                "ostype": "l26",
                "agent": "1",
                "scsihw": "virtio-scsi-single",
                "scsi0": f"{storage}:{base_volume},size={disk_size}",
                "ide2": f"{storage}:{cloudinit},media=cdrom",
                "net0": f"virtio={random_mac(self.api.rng)},bridge={bridge}",
                "serial0": "socket",
                "vga": "serial0",
                "smbios1": f"uuid={uuid.UUID(int=self.api.rng.getrandbits(128), version=4)}",
                "vmgenid": str(uuid.UUID(int=self.api.rng.getrandbits(128), version=4)),
            }
            if tags:
                config["tags"] = normalize_tags(tags)
            config.update(extra or {})
            return self.add_vm(vmid, config)

    # -- client helpers --------------------------------------------------------------------------
    def client(
        self, user: str = "root@pam", token_name: str = "provisioner", token_value: str | None = None, **kw: Any
    ) -> Any:
        """A proxmoxer client for this fake (creates a non-privsep token when no secret is given)."""
        from proxmoxer import ProxmoxAPI

        if token_value is None:
            token_value = self.add_token(user, token_name)
        api = ProxmoxAPI(
            self.host, port=self.port, user=user, token_name=token_name, token_value=token_value, verify_ssl=False, **kw
        )
        return quiet_insecure_warnings(api)

    def raw(self, method: str, path: str, *, token: tuple[str, str, str] | None = None, **kw: Any) -> Any:
        """A plain `requests` call (for wire-level assertions); `token` = (userid, tokenid, secret)."""
        import requests
        from urllib3.exceptions import InsecureRequestWarning

        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"PVEAPIToken={token[0]}!{token[1]}={token[2]}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            return requests.request(method, f"{self.url}{path}", headers=headers, verify=False, timeout=10, **kw)


def quiet_insecure_warnings(api: Any) -> Any:
    """Silence urllib3's InsecureRequestWarning for this proxmoxer client only (its session gets an
    adapter that filters the warning around each send), instead of filtering warnings globally."""
    import requests
    from urllib3.exceptions import InsecureRequestWarning

    class QuietAdapter(requests.adapters.HTTPAdapter):
        def send(self, *args: Any, **kwargs: Any) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureRequestWarning)
                return super().send(*args, **kwargs)

    api._store["session"].mount("https://", QuietAdapter())
    return api
