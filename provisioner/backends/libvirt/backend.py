"""libvirt/KVM: a libvirt network per segment, guests as qcow2 linked clones booted with a cloud-init seed.

Networks: in `openvswitch` mode every segment is a libvirt network on one Open vSwitch bridge whose portgroup
carries the segment's VLAN tag (management on management.vlan); in `bridge` mode every segment is a network on
a host Linux bridge per VLAN that the sysadmin provides (backend.bridges). The environment gateway is a small
guest running the same env_gateway role as in the LXC lab. Every network and domain carries the site's labels
in its <metadata>, written in the call that defines it: discovery never guesses by name and never touches
anything that is not the site's.

When libvirt runs on the controller itself (a local URI), the backend also wires the controller: an OVS
internal port tagged with the management VLAN (or the management bridge) holding management.controller,
routes to the segments via management.gateway, and the per-site guard table; in openvswitch mode verify gets
the controller's own probe on each segment too (probe_point). A remote URI leaves the wiring to the sysadmin's
network and gives no probe point; the test driver (test:///) runs no guests, so there is nothing to wire or wait
for.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from provisioner.backends.base import (
    ActualMachine,
    ActualSegment,
    ActualState,
    ApplyWork,
    Backend,
    Isolation,
    Report,
)
from provisioner.backends.gateway import GATEWAY_FORWARDING_DROPIN, GATEWAY_NFTABLES
from provisioner.backends.network import controller_side, hostguard, links, names
from provisioner.backends.network.probe_point import ProbePoint, remove_left_over, spot
from provisioner.errors import BackendError, ProvisionError
from provisioner.planning.desired import MGMT, MachineSpec, SegmentSpec
from provisioner.planning.planner import Action, Change, Kind
from provisioner.remote.wait import require_ssh
from provisioner.site.model import LibvirtSettings
from provisioner.site.vocabulary import SIZE_RESOURCES
from provisioner.workspace.hostkeys import new_host_key

SSH_WAIT_SECONDS = 420
SSH_HINT = "; the guest consoles are in /var/log/libvirt/qemu/<domain>-console.log"
HOST_COMMANDS = ("ip", "nft", "ssh-keygen", "genisoimage")
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"


def _libvirt():
    try:
        import libvirt
    except ImportError as exc:
        raise ProvisionError(
            "the libvirt backend needs libvirt-python: run `make setup` (pip extra 'libvirt', apt libvirt-dev)"
        ) from exc
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as exceptions, not on stderr
    return libvirt


class LibvirtBackend(Backend):
    name = "libvirt"
    shares_kernel = False
    machine_noun = "libvirt domain"

    @property
    def settings(self) -> LibvirtSettings:
        backend = self.site.model.backend
        assert isinstance(backend, LibvirtSettings)
        return backend

    # ---- names ---------------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        return names.site_tag(self.site.name)

    @property
    def ovs_bridge(self) -> str:
        return self.settings.ovs_bridge or f"{self.tag}-ovs"

    @property
    def owns_ovs_bridge(self) -> bool:
        """A bridge named in the site file is the sysadmin's (it carries the uplink); the default one is ours."""
        return self.settings.ovs_bridge is None

    @property
    def mgmt_port(self) -> str:
        return f"{self.tag}-mgmt"

    def network(self, segment: str) -> str:
        return f"{self.site.name}-{segment}"

    def domain(self, machine: str) -> str:
        return f"{self.site.name}-{machine}"

    def tap(self, machine: str, index: int) -> str:
        return names.machine_port(self.site.name, machine, index)

    def mac(self, machine: str, index: int) -> str:
        digest = names.short_hash(f"{self.site.name}/{machine}/{index}", 6)
        return f"52:54:00:{digest[0:2]}:{digest[2:4]}:{digest[4:6]}"

    @property
    def openvswitch(self) -> bool:
        return self.settings.network_mode == "openvswitch"

    def segment_vlan(self, key: str) -> int | None:
        if key == MGMT:
            return self.site.model.management.vlan
        return self.desired.segment(key).vlan

    def segment_bridge(self, key: str) -> str:
        return self.ovs_bridge if self.openvswitch else self.settings.bridges.get(key, "")

    # ---- connection ----------------------------------------------------------------------------
    @cached_property
    def conn(self):
        libvirt = _libvirt()
        try:
            return libvirt.open(self.settings.uri)
        except libvirt.libvirtError as exc:
            raise ProvisionError(
                f"cannot connect to libvirt at {self.settings.uri} (backend.uri): {exc.get_error_message()}. "
                "Is libvirtd running? Without systemd: `python -m provisioner.backends.libvirt.daemons start`"
            ) from exc

    @cached_property
    def runs_guests(self) -> bool:
        return self.conn.getType() != "TEST"

    @cached_property
    def wires_controller(self) -> bool:
        """libvirt runs on this machine, so the controller's side of the management network is ours to build (a
        remote URI says so without a connection)."""
        return not urlparse(self.settings.uri).hostname and self.runs_guests

    def _foreign(self, what: str) -> str:
        return f"{what} exists but does not carry the labels of site '{self.site.name}'; not touching it"

    # ---- checks --------------------------------------------------------------------------------
    def preflight(self) -> None:
        from provisioner.backends.libvirt import ovs

        _libvirt()
        uri = urlparse(self.settings.uri)
        needed = HOST_COMMANDS if uri.scheme.startswith("qemu") and not uri.hostname else ("ssh-keygen", "genisoimage")
        missing = [c for c in needed if shutil.which(c) is None]
        if missing:
            raise ProvisionError(f"the libvirt backend needs {', '.join(missing)}; run `make setup`")
        _ = self.conn
        if not self.wires_controller:
            return
        if self.openvswitch:
            if shutil.which("ovs-vsctl") is None:
                raise ProvisionError("network_mode openvswitch needs Open vSwitch: run `make setup`")
            try:
                present = ovs.bridges()
            except BackendError as exc:
                raise ProvisionError(
                    f"Open vSwitch does not answer ({exc}); start it: "
                    "`python -m provisioner.backends.libvirt.daemons start`"
                ) from exc
            if not self.owns_ovs_bridge and self.ovs_bridge not in present:
                raise ProvisionError(
                    f"backend.ovs_bridge: Open vSwitch bridge '{self.ovs_bridge}' does not exist on this host; "
                    "create it (with its uplink) or leave the key out to let provision create one for the site"
                )
        else:
            absent = [
                f"{key} -> {bridge}"
                for key, bridge in sorted(self.settings.bridges.items())
                if not Path(f"/sys/class/net/{bridge}/bridge").is_dir()
            ]
            if absent:
                raise ProvisionError(
                    f"backend.bridges: these host bridges do not exist: {', '.join(absent)}; "
                    "in bridge mode the sysadmin provides one Linux bridge per VLAN"
                )

    # ---- discovery -----------------------------------------------------------------------------
    def discover(self) -> ActualState:
        from provisioner.backends.libvirt import xmlspec

        state = ActualState()
        for net in self.conn.listAllNetworks(0):
            xml = net.XMLDesc(0)
            labels = xmlspec.read_labels(xml, "segment")
            if not labels or labels.get("site") != self.site.name:
                continue
            key = labels.get("segment", "")
            state.segments[key] = ActualSegment(
                key,
                labels.get("environment") or None,
                net.name(),
                labels.get("production") == "1",
                drift=self._network_drift(key, xml, net.isActive()),
            )
        if MGMT in state.segments and self.wires_controller:
            state.segments[MGMT].drift += self._controller_drift()
        ports = self._ports()
        for dom in self.conn.listAllDomains(0):
            xml = dom.XMLDesc(0)
            labels = xmlspec.read_labels(xml, "machine")
            if not labels or labels.get("site") != self.site.name:
                continue
            name = labels.get("name", dom.name())
            running = bool(dom.isActive())
            complete = labels.get("state") == "ready"
            state.machines[name] = ActualMachine(
                name=name,
                kind=Kind(labels.get("kind", "host")),
                environment=labels.get("environment") or None,
                handle=dom.name(),
                fingerprint=labels.get("fingerprint", ""),
                complete=complete,
                running=running,
                production=labels.get("production") == "1",
                drift=self._nic_drift(name, xml, ports) if running and complete else [],
                address=labels.get("address"),
            )
        return state

    def isolation_of(self, have: ActualMachine) -> Isolation:
        from provisioner.backends.libvirt import xmlspec

        domain = self.conn.lookupByName(have.handle)
        facts, problems = xmlspec.isolation(domain.XMLDesc(0))
        _, at_next_start = xmlspec.isolation(domain.XMLDesc(_libvirt().VIR_DOMAIN_XML_INACTIVE))
        problems += [f"{p} (in its definition: at its next start)" for p in at_next_start if p not in problems]
        return Isolation(have.name, False, [f"libvirt domain {have.handle}", *facts], problems)

    def probe_point(self, segment: str) -> ProbePoint | None:
        """Where libvirt runs on the controller (a local URI) and the site's Open vSwitch bridge is here: a
        namespace on the controller at the segment's reserved last usable address, its veth an access port of the
        bridge tagged with the segment's VLAN, so the switch puts it on the segment as it puts a guest there.
        None with a remote URI (the segments are on another machine's switch, which the controller cannot join)
        and in bridge mode: NET-2 then attempts from the segment's first host (from an access network: not
        attempted)."""
        if not (self.wires_controller and self.openvswitch):
            return None
        from provisioner.backends.libvirt import ovs

        vlan = self.segment_vlan(segment)
        if vlan is None or self.ovs_bridge not in ovs.bridges():
            return None
        address, gateway = spot(self.site.model, segment)
        return ProbePoint(self.site.name, segment, self.ovs_bridge, address, gateway, ovs.OvsAccessPort(vlan))

    def _ports(self) -> dict | None:
        """OVS ports with their tags, when this machine's switch is ours to read."""
        if not (self.wires_controller and self.openvswitch):
            return None
        from provisioner.backends.libvirt import ovs

        return ovs.ports()

    def _network_drift(self, key: str, xml: str, active: bool) -> list[str]:
        from provisioner.backends.libvirt import xmlspec

        if key != MGMT and key not in {s.key for s in self.desired.segments}:
            return []
        shape = xmlspec.network_shape(xml)
        drift = []
        if not active:
            drift.append("network is not active")
        wanted_bridge = self.segment_bridge(key)
        if shape.bridge != wanted_bridge:
            drift.append(f"network is on bridge {shape.bridge}, expected {wanted_bridge}")
        if self.openvswitch and shape.portgroups != {key: self.segment_vlan(key)}:
            drift.append(f"portgroups {shape.portgroups}, expected {key} with VLAN {self.segment_vlan(key)}")
        return drift

    def _wanted_routes(self) -> dict[str, str]:
        return controller_side.segment_routes(self.desired, self.site.model.management)

    def _segment_devices(self) -> tuple[str, ...]:
        """The controller's own interfaces a segment's frames may reach it through, closed by the guard's input
        chain: in openvswitch mode the bridge's local port, which sees every VLAN (the controller would otherwise
        answer ARP for its management address there, past the gateway)."""
        return (self.ovs_bridge,) if self.openvswitch else ()

    @property
    def controller_device(self) -> str:
        return self.mgmt_port if self.openvswitch else self.settings.bridges.get(MGMT, "")

    def _controller_drift(self) -> list[str]:
        from provisioner.backends.libvirt import ovs

        mgmt = self.site.model.management
        device = self.controller_device
        drift = []
        if self.openvswitch:
            port = ovs.ports().get(device)
            if port is None:
                return [f"the controller's management port {device} is missing"]
            if port.tag != mgmt.vlan:
                drift.append(f"the controller's port {device} has VLAN {port.tag}, expected {mgmt.vlan}")
        if not Path(f"/sys/class/net/{device}").exists():
            return [*drift, f"{device} is missing"]
        receiver = controller_side.receiver_guard(self.site.model)
        return drift + controller_side.drift(
            self.site.name, mgmt, device, self._wanted_routes(), self._segment_devices(), receiver
        )

    def _wanted_nics(self, machine: str):
        from provisioner.backends.libvirt.xmlspec import NicXml

        spec = next((m for m in self.desired.machines if m.name == machine), None)
        if spec is None:
            return None
        return [
            NicXml(
                self.network(nic.segment),
                nic.segment if self.openvswitch else None,
                self.mac(machine, index),
                self.tap(machine, index),
            )
            for index, nic in enumerate(spec.nics)
        ], spec

    def _nic_drift(self, machine: str, xml: str, ports: dict | None) -> list[str]:
        from provisioner.backends.libvirt import xmlspec

        wanted = self._wanted_nics(machine)
        if wanted is None:
            return []
        nics, spec = wanted
        have = {nic.mac: nic for nic in xmlspec.domain_nics(xml)}
        drift = []
        if len(have) != len(nics):
            drift.append(f"{len(have)} interfaces, expected {len(nics)}")
        for want, nic_spec in zip(nics, spec.nics, strict=True):
            got = have.get(want.mac)
            if got is None:
                drift.append(f"interface {nic_spec.name} is gone")
                continue
            if (got.network, got.portgroup) != (want.network, want.portgroup):
                drift.append(
                    f"interface {nic_spec.name} is on network {got.network} portgroup {got.portgroup}, "
                    f"expected {want.network} portgroup {want.portgroup}"
                )
            target = got.target or want.target
            if ports is not None:
                port = ports.get(target)
                vlan = self.segment_vlan(nic_spec.segment)
                if port is None:
                    drift.append(f"interface {nic_spec.name} ({target}) is not on the switch")
                elif port.tag != vlan:
                    drift.append(f"interface {nic_spec.name} ({target}) carries VLAN {port.tag}, expected {vlan}")
            elif self.wires_controller and not self.openvswitch:
                master = _master(target)
                bridge = self.segment_bridge(nic_spec.segment)
                if master != bridge:
                    where = master or "no bridge"
                    drift.append(f"interface {nic_spec.name} ({target}) is on {where}, expected {bridge}")
        return drift

    # ---- apply ---------------------------------------------------------------------------------
    rebuilds_changed = True  # a guest whose configuration changed is built anew

    @contextmanager
    def apply_errors(self) -> Iterator[None]:
        libvirt = _libvirt()
        try:
            yield
        except libvirt.libvirtError as exc:
            raise BackendError(f"libvirt ({self.settings.uri}): {exc.get_error_message()}") from exc

    def remove_machine(self, change: Change, have: ActualMachine, work: ApplyWork, report: Report) -> None:
        verb = "rebuilding" if change.name in work.rebuilds else "removing"
        report(f"{verb} {change.kind} {change.name} (domain {have.handle})")
        self._remove_domain(have.handle)

    def converge_segments(self, work: ApplyWork, report: Report) -> None:
        """The switch, a libvirt network per segment, the controller's side; the base image's volumes."""
        if work.segment_work and self.wires_controller and self.openvswitch and self.owns_ovs_bridge:
            self._ensure_ovs_bridge(report)
        for change in work.segment_work:
            self._converge_network(self.desired.segment(change.name), work.actual, report)
        if not work.full_destroy and self.wires_controller and (MGMT in work.actual.segments or work.segment_work):
            self._controller_side(report)
        if work.builds:
            self._ensure_base_volumes(report)

    def converge_machine(self, change: Change, work: ApplyWork, report: Report) -> None:
        rebuild = change.name in work.rebuilds
        self._converge_machine(change, work.specs[change.name], work.actual, rebuild, report)

    def remove_segment(self, change: Change, have: ActualSegment, report: Report) -> None:
        report(f"removing segment {change.name} (network {have.handle})")
        self._remove_network(have.handle)

    def finish_apply(self, work: ApplyWork, report: Report) -> None:
        if self.wires_controller:  # the test driver runs no guests
            require_ssh(
                work.touched(), SSH_WAIT_SECONDS, report, SSH_HINT, what="guest(s)", interval=1, banner_seconds=3
            )
        self._write_known_hosts()

    # ---- segments ------------------------------------------------------------------------------
    def _ensure_ovs_bridge(self, report: Report) -> None:
        from provisioner.backends.libvirt import ovs

        present = ovs.bridges()
        if self.ovs_bridge in present:
            if present[self.ovs_bridge].get(ovs.SITE_KEY) != self.site.name:
                raise BackendError(self._foreign(f"Open vSwitch bridge {self.ovs_bridge}"))
            return
        report(f"creating Open vSwitch bridge {self.ovs_bridge} ({self.settings.ovs_datapath} datapath)")
        ovs.create_bridge(self.ovs_bridge, self.site.name, self.settings.ovs_datapath)

    def _segment_labels(self, seg: SegmentSpec) -> dict[str, str]:
        return {
            "site": self.site.name,
            "segment": seg.key,
            "environment": seg.environment or "",
            "production": "1" if seg.production else "0",
            "vlan": str(self.segment_vlan(seg.key) or ""),
        }

    def _converge_network(self, seg: SegmentSpec, actual: ActualState, report: Report) -> None:
        from provisioner.backends.libvirt import xmlspec

        name = self.network(seg.key)
        existing = _find(self.conn.networkLookupByName, name)
        if existing is not None:
            xml = existing.XMLDesc(0)
            labels = xmlspec.read_labels(xml, "segment")
            if not labels or labels.get("site") != self.site.name:
                raise BackendError(self._foreign(f"libvirt network {name}"))
            if not self._network_drift(seg.key, xml, bool(existing.isActive())):
                return  # the network is as designed; the drift is on the controller's side, repaired after
            report(f"redefining segment {seg.key} (network {name})")
            self._remove_network(name)
        else:
            report(f"creating segment {seg.key}: network {name} on {self.segment_bridge(seg.key)}"
                   + (f", VLAN {self.segment_vlan(seg.key)}" if self.openvswitch else ""))  # fmt: skip
        xml = xmlspec.network_xml(
            name,
            self._segment_labels(seg),
            self.segment_bridge(seg.key),
            self.segment_vlan(seg.key),
            seg.key if self.openvswitch else None,
        )
        net = self.conn.networkDefineXML(xml)
        net.setAutostart(1)
        net.create()

    def _remove_network(self, name: str) -> None:
        net = _find(self.conn.networkLookupByName, name)
        if net is None:
            return
        if net.isActive():
            net.destroy()
        net.undefine()

    def _controller_side(self, report: Report) -> None:
        """Idempotent: the controller's management port and address, routes to each segment via the gateway."""
        from provisioner.backends.libvirt import ovs

        mgmt = self.site.model.management
        device = self.controller_device
        if self.openvswitch:
            port = ovs.ports().get(device)
            if port is None or port.tag != mgmt.vlan:
                report(f"management port {device} on {self.ovs_bridge}, VLAN {mgmt.vlan}")
                ovs.add_internal_port(self.ovs_bridge, device, int(mgmt.vlan or 0), self.site.name)
                ovs.set_tag(device, int(mgmt.vlan or 0))
        receiver = controller_side.receiver_guard(self.site.model)
        controller_side.wire(self.site.name, mgmt, device, self._wanted_routes(), self._segment_devices(), receiver)

    # ---- machines ------------------------------------------------------------------------------
    @cached_property
    def pool(self):
        from provisioner.backends.libvirt import storage

        return storage.ensure_pool(self.conn, self.settings.pool, self.settings.pool_path, say=lambda _m: None)

    @cached_property
    def image(self):
        from provisioner.backends.libvirt import guest_image

        return guest_image.current()

    def _ensure_base_volumes(self, report: Report) -> None:
        """The base image's disk, kernel and initrd as volumes of the pool; imported from the local cache."""
        from provisioner.backends.libvirt import guest_image, storage

        parts = {"disk": "qcow2", "kernel": "raw", "initrd": "raw"}
        missing = [p for p in parts if storage.find_volume(self.pool, self.image.volume(p)) is None]
        if not missing:
            return
        image = guest_image.ensure_built(say=report)
        for part in missing:
            report(f"importing {self.image.volume(part)} into storage pool {self.settings.pool}")
            storage.import_file(
                self.conn, self.pool, self.image.volume(part), getattr(image, part), parts[part], self.wires_controller
            )

    def _labels(self, spec: MachineSpec, host_key: str, state: str) -> dict[str, str]:
        return {
            "site": self.site.name,
            "kind": str(spec.kind),
            "name": spec.name,
            "environment": spec.environment or "",
            "production": "1" if spec.production else "0",
            "fingerprint": spec.fingerprint(),
            "address": str(spec.address),
            "base": self.image.name,
            "host_key": host_key,
            "state": state,
        }

    def _domain_spec(self, spec: MachineSpec, labels: dict[str, str], disk: str, seed: str):
        from provisioner.backends.libvirt import storage, xmlspec

        nics, _ = self._wanted_nics(spec.name)
        vcpus, memory = SIZE_RESOURCES[spec.size]
        if self.settings.max_memory_mib is not None:
            memory = min(memory, self.settings.max_memory_mib)
        kernel = storage.find_volume(self.pool, self.image.volume("kernel"))
        initrd = storage.find_volume(self.pool, self.image.volume("initrd"))
        if kernel is None or initrd is None:
            raise BackendError(f"the base image's kernel or initrd is missing from pool {self.settings.pool}")
        name = self.domain(spec.name)
        return xmlspec.DomainSpec(
            name=name,
            labels=labels,
            domain_type=self.settings.domain_type,
            vcpus=vcpus,
            memory_mib=memory,
            kernel=kernel.path(),
            initrd=initrd.path(),
            cmdline=KERNEL_CMDLINE,
            disk=disk,
            seed=seed,
            nics=tuple(nics),
            tb_cache_mib=self.settings.tb_cache_mib,
            console_log=f"/var/log/libvirt/qemu/{name}-console.log" if self.wires_controller else None,
            checksum_offload=not (self.openvswitch and self.settings.ovs_datapath == "netdev"),
        )

    def _seed(self, spec: MachineSpec, host_key_private: str, host_key_public: str):
        from provisioner.backends.libvirt import seed

        nics = tuple(
            seed.SeedNic(nic.name, self.mac(spec.name, index), f"{nic.address}/{nic.prefixlen}",
                         str(nic.gateway) if nic.gateway else None)
            for index, nic in enumerate(spec.nics)
        )  # fmt: skip
        files: tuple[seed.SeedFile, ...] = ()
        commands: tuple[tuple[str, ...], ...] = ()
        if spec.kind == Kind.GATEWAY:
            # Until the env_gateway role installs the site's policy nothing is forwarded between environments;
            # forwarding is switched on only after this ruleset has loaded.
            files = (
                seed.SeedFile("/etc/nftables.conf", GATEWAY_NFTABLES, "0755"),
                seed.SeedFile("/etc/systemd/system/nftables.service.d/provisioner-forwarding.conf",
                              GATEWAY_FORWARDING_DROPIN),
            )  # fmt: skip
            commands = (("systemctl", "daemon-reload"), ("systemctl", "enable", "--now", "nftables.service"))
        return seed.Seed(
            instance_id=f"{self.site.name}-{spec.name}-{uuid.uuid4().hex[:12]}",
            hostname=spec.name,
            controller_key=self.state.controller_public_key(),
            host_key_private=host_key_private,
            host_key_public=host_key_public,
            nics=nics,
            files=files,
            commands=commands,
        )

    def _converge_machine(
        self, change: Change, spec: MachineSpec, actual: ActualState, rebuild: bool, report: Report
    ) -> None:
        have = actual.machines.get(spec.name)
        if change.action in (Action.CREATE, Action.REPLACE) or have is None or rebuild:
            self._create_machine(spec, report)
            return
        if change.action == Action.UPDATE:
            self._repair_nics(spec, have.handle, report)
            return
        if change.action == Action.START:
            report(f"starting {spec.kind} {spec.name}")
            self.conn.lookupByName(have.handle).create()

    def _create_machine(self, spec: MachineSpec, report: Report) -> None:
        from provisioner.backends.libvirt import seed, storage, xmlspec

        libvirt = _libvirt()
        name = self.domain(spec.name)
        existing = _find(self.conn.lookupByName, name)
        if existing is not None:
            labels = xmlspec.read_labels(existing.XMLDesc(0), "machine")
            if not labels or labels.get("site") != self.site.name:
                raise BackendError(self._foreign(f"libvirt domain {name}"))
            self._remove_domain(name)
        report(f"creating {spec.kind} {spec.name} at {spec.address}")
        key = new_host_key(spec.name)
        pool_path = xmlspec.pool_target(self.pool.XMLDesc(0))
        disk_name, seed_name = f"{name}.qcow2", f"{name}-seed.iso"
        labels = self._labels(spec, key.public, "building")
        domain_spec = self._domain_spec(spec, labels, f"{pool_path}/{disk_name}", f"{pool_path}/{seed_name}")
        # defined first, labelled as building: an interruption from here on leaves a domain that the next
        # plan finds and replaces, together with the volumes its XML names
        dom = self.conn.defineXML(xmlspec.domain_xml(domain_spec))
        base = storage.find_volume(self.pool, self.image.volume("disk"))
        if base is None:
            raise BackendError(f"the base disk {self.image.volume('disk')} is missing from pool {self.settings.pool}")
        storage.linked_clone(self.pool, disk_name, base)
        iso = seed.build_iso(self._seed(spec, key.private.decode(), key.public))
        storage.upload_bytes(self.conn, self.pool, seed_name, iso)
        dom.create()
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            xmlspec.metadata_xml("machine", {**labels, "state": "ready"}),
            xmlspec.PREFIX,
            xmlspec.NS,
            libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )

    def _remove_domain(self, name: str) -> None:
        from provisioner.backends.libvirt import storage, xmlspec

        dom = _find(self.conn.lookupByName, name)
        if dom is None:
            return
        disks = xmlspec.domain_disks(dom.XMLDesc(0))
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        for path in disks:
            if Path(path).name.startswith(f"{name}.") or Path(path).name.startswith(f"{name}-seed"):
                storage.delete_path(self.conn, path)

    def _repair_nics(self, spec: MachineSpec, handle: str, report: Report) -> None:
        from provisioner.backends.libvirt import ovs, xmlspec

        libvirt = _libvirt()
        dom = self.conn.lookupByName(handle)
        nics, _ = self._wanted_nics(spec.name)
        have = {nic.mac: nic for nic in xmlspec.domain_nics(dom.XMLDesc(0))}
        ports = self._ports()
        for want, nic_spec in zip(nics, spec.nics, strict=True):
            got = have.get(want.mac)
            if got is None or (got.network, got.portgroup) != (want.network, want.portgroup):
                report(f"putting {spec.name} interface {nic_spec.name} back on {want.network}")
                dom.updateDeviceFlags(
                    xmlspec.interface_xml(want), libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
                )
            vlan = self.segment_vlan(nic_spec.segment)
            if ports is not None and vlan is not None:
                port = ports.get(want.target)
                if port is not None and port.tag != vlan:
                    report(f"putting {spec.name} interface {nic_spec.name} ({want.target}) back on VLAN {vlan}")
                    ovs.set_tag(want.target, vlan)
            elif self.wires_controller and not self.openvswitch:
                bridge = self.segment_bridge(nic_spec.segment)
                if _master(want.target) != bridge:
                    report(f"re-attaching {spec.name} interface {nic_spec.name} to {bridge}")
                    links.attach(want.target, bridge)

    def _write_known_hosts(self) -> None:
        from provisioner.backends.libvirt import xmlspec

        entries = {}
        for dom in self.conn.listAllDomains(0):
            labels = xmlspec.read_labels(dom.XMLDesc(0), "machine")
            if not labels or labels.get("site") != self.site.name or labels.get("state") != "ready":
                continue
            if labels.get("host_key") and labels.get("address"):
                entries[labels["address"]] = " ".join(labels["host_key"].split()[:2])
        self.state.write_known_hosts(entries)

    def cleanup_site(self) -> None:
        """After a full destroy: the controller's port and routes, the guard table, a probe a killed verify left,
        the site's own switch."""
        hostguard.remove(self.site.name)
        if not self.wires_controller:
            return
        mgmt = self.site.model.management
        device = self.controller_device
        remove_left_over(self.site.name)
        if self.openvswitch:
            from provisioner.backends.libvirt import ovs

            ovs.remove_probe_ports(self.site.name)
            if device in ovs.ports():
                ovs.delete_port(device)
            bridges = ovs.bridges()
            ours = self.owns_ovs_bridge and bridges.get(self.ovs_bridge, {}).get(ovs.SITE_KEY) == self.site.name
            if ours and not ovs.ports_on(self.ovs_bridge):
                ovs.delete_bridge(self.ovs_bridge)
        elif device and Path(f"/sys/class/net/{device}").exists():
            for cidr in links.routes_via(device):
                links.delete_route(cidr, device)
            from provisioner.controller.shell import run

            run(["ip", "address", "del", f"{mgmt.controller}/{mgmt.cidr.prefixlen}", "dev", device], check=False)


def _find(lookup: Callable[[str], Any], name: str) -> Any:
    """A domain or network by name (lookup: conn.lookupByName or conn.networkLookupByName); None if absent."""
    libvirt = _libvirt()
    try:
        return lookup(name)
    except libvirt.libvirtError:
        return None


def _master(device: str) -> str | None:
    link = Path(f"/sys/class/net/{device}/master")
    return link.resolve().name if link.exists() else None
