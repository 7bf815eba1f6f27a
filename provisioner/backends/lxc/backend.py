"""The local LXC lab: one bridge per environment, a gateway container, hosts as overlay clones."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provisioner.backends.base import (
    ActualMachine,
    ActualSegment,
    ActualState,
    ApplyWork,
    Attachment,
    Backend,
    Isolation,
    Report,
)
from provisioner.backends.gateway import GATEWAY_FORWARDING_DROPIN, GATEWAY_NFTABLES
from provisioner.backends.lxc import base_image, containers
from provisioner.backends.lxc.containers import SeedFile
from provisioner.backends.network import controller_side, hostguard, links, names
from provisioner.backends.network.probe_point import ProbePoint, spot
from provisioner.errors import BackendError, ProvisionError
from provisioner.planning.desired import MGMT, MachineSpec, SegmentSpec
from provisioner.planning.planner import Action, Change, Kind
from provisioner.remote.wait import require_ssh
from provisioner.workspace.hostkeys import HostKey, new_host_key
from provisioner.workspace.site_state import AUTOMATION_USER

REQUIRED_COMMANDS = ("lxc-create", "lxc-start", "lxc-stop", "lxc-ls", "ip", "nft", "ssh-keygen", "chroot")
SSH_WAIT_SECONDS = 90


class LxcBackend(Backend):
    name = "lxc"
    machine_noun = "container"
    _lxcpath: Path  # set by prepare_apply
    _rootfs: Path

    # ---- names ---------------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        return names.site_tag(self.site.name)

    def bridge(self, segment_key: str) -> str:
        return f"{self.tag}-{segment_key}"

    def container(self, machine: str) -> str:
        return f"{self.site.name}-{machine}"

    def veth(self, machine: str, index: int) -> str:
        return names.machine_port(self.site.name, machine, index)

    @property
    def lxcpath(self) -> Path:
        return base_image.lxc_path()

    # ---- checks --------------------------------------------------------------------------------
    def preflight(self) -> None:
        missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None]
        if missing:
            raise ProvisionError(
                f"the LXC lab needs {', '.join(missing)}; run `make setup` (installs lxc, debootstrap, nftables)"
            )
        if os.geteuid() != 0:
            raise ProvisionError("the LXC lab builds bridges and containers: run provision as root")

    # ---- discovery -----------------------------------------------------------------------------
    def discover(self) -> ActualState:
        state = ActualState()
        all_links = {link.name: link for link in links.list_links()}
        for link in all_links.values():
            if link.labels.get("site") == self.site.name and link.labels.get("kind") == "segment":
                key = link.labels.get("segment", "")
                env = link.labels.get("environment") or None
                state.segments[key] = ActualSegment(key, env, link.name, link.labels.get("production") == "1")
                if links.ipv6_enabled(link.name):
                    state.segments[key].drift.append(f"IPv6 is on for bridge {link.name}: the controller answers there")
        if MGMT in state.segments:
            state.segments[MGMT].drift += self._controller_drift(state.segments[MGMT].handle)
        running = containers.running_names()
        for found in containers.list_site_containers(self.lxcpath, self.site.name):
            labels = found.labels
            is_running = found.name in running
            state.machines[labels.get("name", found.name)] = ActualMachine(
                name=labels.get("name", found.name),
                kind=Kind(labels.get("kind", "host")),
                environment=labels.get("environment") or None,
                handle=found.name,
                fingerprint=labels.get("fingerprint", ""),
                complete=found.complete,
                running=is_running,
                production=labels.get("production") == "1",
                drift=self._nic_drift(labels, all_links) if is_running and found.complete else [],
                address=labels.get("address"),
            )
        return state

    def attachments(self) -> list[Attachment]:
        """Every running container with an interface on one of the site's bridges (labelled or not), with the
        address it holds, and every bridge port no container explains."""
        all_links = links.list_links()
        bridges = {
            link.name: link.labels.get("segment", "")
            for link in all_links
            if link.labels.get("site") == self.site.name and link.labels.get("kind") == "segment"
        }
        ports = {  # the controller's own probe (verify) is not something on the segment to explain
            link.name: link.master
            for link in all_links
            if link.master in bridges and link.labels.get("kind") != "probe"
        }
        explained: set[str] = set()
        found: list[Attachment] = []
        for name in sorted(containers.running_names()):
            directory = self.lxcpath / name
            config = directory / "config"
            if not config.is_file():
                continue
            nics = _config_nics(config.read_text())
            if not any(nic.get("link") in bridges for nic in nics.values()):
                continue
            labels = containers.read_labels(directory) or {}
            managed = labels.get("site") == self.site.name and labels.get("managed-by") == "provisioner"
            info = _lxc_info(name)
            explained |= set(info["links"])
            for nic in nics.values():
                if nic.get("link") not in bridges:
                    continue
                address = nic.get("ipv4.address", "").split("/")[0] or None
                if address not in info["ips"]:
                    address = next(iter(info["ips"]), None) if len(nics) == 1 else None
                found.append(
                    Attachment(
                        bridges[nic["link"]],
                        labels.get("name", name) if managed else name,
                        address,
                        managed,
                        nic.get("veth.pair", ""),
                    )
                )
        for port, bridge in sorted(ports.items()):
            if port not in explained and not any(a.interface == port for a in found):
                found.append(Attachment(bridges[str(bridge)], f"port {port}", None, False, port))
        return found

    def probe_point(self, segment: str) -> ProbePoint | None:
        """On an environment's segment or on an access network, at its reserved last usable address, routed
        through the gateway's leg there; a port of the segment's bridge."""
        address, gateway = spot(self.site.model, segment)
        return ProbePoint(self.site.name, segment, self.bridge(segment), address, gateway)

    @contextmanager
    def machine_root(self, machine: str) -> Iterator[int | None]:
        """The container's root as its init sees it (/proc/<init pid>/root, the container's own mounts included),
        opened by the controller; None when the container does not run."""
        fd = containers.open_root(self.container(machine))
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def isolation_of(self, have: ActualMachine) -> Isolation:
        facts, problems = containers.isolation(self.lxcpath, have.handle)
        return Isolation(have.name, True, [f"LXC container {have.handle}", *facts], problems)

    def _controller_drift(self, bridge: str) -> list[str]:
        routes = controller_side.segment_routes(self.desired, self.site.model.management)
        receiver = controller_side.receiver_guard(self.site.model)
        return controller_side.drift(
            self.site.name, self.site.model.management, bridge, routes, self._env_bridges(), receiver
        )

    def _nic_drift(self, labels: dict[str, str], all_links: dict[str, links.Link]) -> list[str]:
        drift = []
        for pair, bridge in _parse_nics(labels.get("nics", "")):
            link = all_links.get(pair)
            if link is None:
                drift.append(f"interface {pair} is gone")
            elif link.master != bridge:
                drift.append(f"interface {pair} is on {link.master or 'no bridge'}, expected {bridge}")
        return drift

    # ---- apply ---------------------------------------------------------------------------------
    def prepare_apply(self, work: ApplyWork, report: Report) -> None:
        self.preflight()
        self._lxcpath = lxcpath = self.lxcpath  # asks lxc-config: once per apply
        if work.converge:
            containers.raise_host_limits(report)
        self._rootfs = base_image.ensure_base(lxcpath, say=report) if work.builds else base_image.base_rootfs(lxcpath)

    def remove_machine(self, change: Change, have: ActualMachine, work: ApplyWork, report: Report) -> None:
        report(f"removing {change.kind} {change.name}")
        containers.remove(self._lxcpath, have.handle, have.running)

    def converge_segments(self, work: ApplyWork, report: Report) -> None:
        """Bridges, then the controller's management address, its routes and its guard table."""
        for change in work.plan.of(Kind.SEGMENT, Action.CREATE):
            self._create_segment(self.desired.segment(change.name), report)
        for change in work.plan.of(Kind.SEGMENT, Action.UPDATE):
            bridge = self.bridge(change.name)
            if links.ipv6_enabled(bridge):
                report(f"switching IPv6 off on bridge {bridge}")
                links.disable_ipv6(bridge)
        if not work.full_destroy and self._has_segment(MGMT):
            self._controller_side(report)
        work.actual = self.discover()  # the machines and the segments that go, as they are now

    def converge_machine(self, change: Change, work: ApplyWork, report: Report) -> None:
        self._converge_machine(change, work.specs[change.name], work.actual, self._lxcpath, self._rootfs, report)

    def remove_segment(self, change: Change, have: ActualSegment, report: Report) -> None:
        report(f"removing segment {change.name} ({have.handle})")
        links.delete_link(have.handle)

    def finish_apply(self, work: ApplyWork, report: Report) -> None:
        require_ssh(work.touched(), SSH_WAIT_SECONDS, report)
        self._write_known_hosts()

    def _has_segment(self, key: str) -> bool:
        return any(
            link.labels.get("site") == self.site.name and link.labels.get("segment") == key
            for link in links.list_links()
        )

    def _create_segment(self, seg: SegmentSpec, report: Report) -> None:
        name = self.bridge(seg.key)
        labels = {
            "site": self.site.name,
            "kind": "segment",
            "segment": seg.key,
            "environment": seg.environment or "",
            "production": "1" if seg.production else "0",
        }
        existing = {link.name: link for link in links.list_links()}
        if name in existing:
            if name not in self.state.journal():
                raise BackendError(
                    f"bridge {name} exists but does not carry the labels of site '{self.site.name}'; "
                    "it belongs to something else, remove or rename it"
                )
            report(f"removing bridge {name} left unlabelled by an interrupted apply")
            links.delete_link(name)
        report(f"creating segment {seg.key}: bridge {name} for {seg.cidr}")
        self.state.journal_add(name)
        links.create_bridge(name, labels)
        self.state.journal_done(name)

    def _controller_side(self, report: Report) -> None:
        """Idempotent: the controller's address on the management bridge, routes to each segment via the gateway."""
        routes = controller_side.segment_routes(self.desired, self.site.model.management)
        receiver = controller_side.receiver_guard(self.site.model)
        controller_side.wire(
            self.site.name, self.site.model.management, self.bridge(MGMT), routes, self._env_bridges(), receiver
        )

    def _env_bridges(self) -> list[str]:
        """The bridges of the environments' segments: the controller has no business with them."""
        return [self.bridge(s.key) for s in self.desired.segments if s.key != MGMT]

    def _labels(self, spec: MachineSpec, host_key: str) -> dict[str, str]:
        return {
            "managed-by": "provisioner",
            "site": self.site.name,
            "kind": str(spec.kind),
            "name": spec.name,
            "environment": spec.environment or "",
            "production": "1" if spec.production else "0",
            "fingerprint": spec.fingerprint(),
            "address": str(spec.address),
            "base": base_image.base_name(),
            "host_key": host_key,
            "nics": ",".join(f"{self.veth(spec.name, i)}={self.bridge(n.segment)}" for i, n in enumerate(spec.nics)),
        }

    def _config(self, spec: MachineSpec, rootfs: Path, directory: Path) -> str:
        lines = containers.config_header(
            f"managed by provisioner: site={self.site.name} {spec.kind}={spec.name}",
            spec.name,
            rootfs,
            directory / "overlay" / "delta",
        )
        for index, nic in enumerate(spec.nics):
            mac = names.short_hash(f"{self.site.name}/{spec.name}/{index}", 10)
            lines += containers.nic_config(
                index,
                link=self.bridge(nic.segment),
                name=nic.name,
                hwaddr=f"02:{mac[0:2]}:{mac[2:4]}:{mac[4:6]}:{mac[6:8]}:{mac[8:10]}",
                address=f"{nic.address}/{nic.prefixlen}",
                gateway=None if nic.gateway is None else str(nic.gateway),
                pair=self.veth(spec.name, index),
            )
        return "\n".join(lines) + "\n"

    def _seed(self, spec: MachineSpec, rootfs: Path, host_key: HostKey) -> list[SeedFile]:
        uid, gid = containers.user_ids(rootfs, AUTOMATION_USER)
        files = [
            *containers.hostname_files(spec.name),
            *containers.identity_files(host_key),
            *containers.authorized_keys_files(
                f"/home/{AUTOMATION_USER}", uid, gid, f"{self.state.controller_public_key()}\n"
            ),
        ]
        if spec.kind == Kind.GATEWAY:
            files += [
                SeedFile("/etc/nftables.conf", GATEWAY_NFTABLES.encode(), 0o755),
                SeedFile(
                    "/etc/systemd/system/sysinit.target.wants/nftables.service",
                    b"/lib/systemd/system/nftables.service",
                    kind="symlink",
                ),
                SeedFile(
                    "/etc/systemd/system/nftables.service.d/provisioner-forwarding.conf",
                    GATEWAY_FORWARDING_DROPIN.encode(),
                ),
            ]
        return files

    def _converge_machine(
        self, change: Change, spec: MachineSpec, actual: ActualState, lxcpath: Path, rootfs: Path, report: Report
    ) -> None:
        name = self.container(spec.name)
        have = actual.machines.get(spec.name)
        if change.action in (Action.CREATE, Action.REPLACE) or have is None:
            if (lxcpath / name).exists():
                labels = containers.read_labels(lxcpath / name)
                if labels is None or labels.get("site") != self.site.name:
                    raise BackendError(
                        f"container directory {lxcpath / name} exists and is not this site's; not touching it"
                    )
                containers.remove(lxcpath, name, name in containers.running_names())
            report(f"creating {spec.kind} {spec.name} at {spec.address}")
            key = new_host_key(spec.name)
            containers.create_clone(
                lxcpath,
                name,
                rootfs,
                self._labels(spec, key.public),
                self._config(spec, rootfs, lxcpath / name),
                self._seed(spec, rootfs, key),
            )
            containers.start(name)
            return
        if change.action == Action.UPDATE:
            directory = lxcpath / name
            labels = containers.read_labels(directory) or {}
            if have.fingerprint != spec.fingerprint():
                report(f"reconfiguring {spec.kind} {spec.name} and restarting it")
                containers.write_config(directory, self._config(spec, rootfs, directory))
                containers.write_labels(directory, {**self._labels(spec, labels.get("host_key", "")), "state": "ready"})
                if have.running:
                    containers.stop(name)
                containers.start(name)
                return
            self._repair_nics(spec, name, report)
            return
        if change.action == Action.START:
            report(f"starting {spec.kind} {spec.name}")
            containers.start(name)

    def _repair_nics(self, spec: MachineSpec, name: str, report: Report) -> None:
        present = {link.name: link for link in links.list_links()}
        missing = False
        for index, nic in enumerate(spec.nics):
            pair, bridge = self.veth(spec.name, index), self.bridge(nic.segment)
            link = present.get(pair)
            if link is None:
                missing = True
            elif link.master != bridge:
                report(f"re-attaching {spec.name} interface {nic.name} to {bridge}")
                links.attach(pair, bridge)
        if missing:
            report(f"restarting {spec.name}: an interface was removed")
            containers.stop(name)
            containers.start(name)

    def _write_known_hosts(self) -> None:
        entries = {}
        for found in containers.list_site_containers(self.lxcpath, self.site.name):
            if found.complete and found.labels.get("host_key") and found.labels.get("address"):
                entries[found.labels["address"]] = " ".join(found.labels["host_key"].split()[:2])
        self.state.write_known_hosts(entries)

    def cleanup_site(self) -> None:
        hostguard.remove(self.site.name)
        for name in self.state.journal():  # bridges left unlabelled by an interrupted apply
            if name in {link.name for link in links.list_links()}:
                links.delete_link(name)
            self.state.journal_done(name)


def _config_nics(text: str) -> dict[str, dict[str, str]]:
    """lxc.net.<i>.<key> = value lines of a container config, per interface index."""
    nics: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        parts = key.strip().split(".", 3)
        if len(parts) == 4 and parts[:2] == ["lxc", "net"]:
            nics.setdefault(parts[2], {})[parts[3]] = value.strip()
    return nics


def _lxc_info(name: str) -> dict[str, list[str]]:
    """The addresses a running container holds and its host-side interfaces, from `lxc-info`."""
    from provisioner.controller.shell import run

    output = run(["lxc-info", "-n", name], check=False).stdout
    info: dict[str, list[str]] = {"ips": [], "links": []}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "IP":
            info["ips"].append(value.strip())
        elif key.strip() == "Link":
            info["links"].append(value.strip())
    return info


def _parse_nics(text: str) -> list[tuple[str, str]]:
    return [tuple(item.split("=", 1)) for item in text.split(",") if "=" in item]  # type: ignore[misc]
