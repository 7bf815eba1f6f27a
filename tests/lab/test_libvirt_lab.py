"""The libvirt backend end to end on a real libvirtd that this module starts and stops itself.

Only what libvirt itself proves (tests/lab/sites/lvlab.yml, range 10.93.0.0/16): a dev guest and the gateway
guest, linked clones of the guest image, on VLAN-tagged ports of one Open vSwitch bridge (the gateway has a leg
on management, dev, test and prod); applied with the roles, `provision verify` passes (NET-2 attempted from the
controller's own probe, an access port with dev's tag), a port moved to another environment's tag is detected
and repaired, a real second apply changes nothing, a probe a killed verify left is no drift, and destroy leaves
no domain, volume, network or switch port of the site (nor that probe). Guests run under TCG here (no usable
KVM): each costs minutes, so test and prod have their segments and no guest of their own; separation between
environments is proven on the LXC lab and the Proxmox path, with the same gateway role.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import Lab, verify_keys
from helpers import ROOT, write_site
from probes import ssh

from provisioner.backends.network import hostguard, links

pytestmark = [pytest.mark.lab, pytest.mark.libvirt_lab, pytest.mark.timeout(2400)]

SITE_FILE = ROOT / "tests" / "lab" / "sites" / "lvlab.yml"
NEEDS = ("libvirtd", "virtlogd", "qemu-system-x86_64", "ovs-vswitchd", "ovsdb-server", "genisoimage", "debootstrap")
TIMINGS: dict[str, float] = {}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the libvirt lab needs root"
    absent = [c for c in NEEDS if shutil.which(c) is None]
    if absent:
        return f"{', '.join(absent)} not installed (make setup installs them)"
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "libvirt-python is not installed (make setup installs the 'libvirt' extra)"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the libvirt lab, but {reason}")
        pytest.skip(reason)
    from provisioner.backends.libvirt import daemons

    started = daemons.start(say=lambda m: print(f"lab: {m}"))
    base = tmp_path_factory.mktemp("lvlab")
    lab = Lab(
        site_file=write_site(base / "inventories" / "lvlab", yaml.safe_load(SITE_FILE.read_text())),
        state_dir=base / "state",
        env={"PROVISION_STATE_DIR": str(base / "state")},
    )
    clock = time.monotonic()
    built = lab.cli("image", "build", "--backend", "libvirt", timeout=3600)
    TIMINGS["image build (cached after the first)"] = time.monotonic() - clock
    assert built.rc == 0, built.stdout + built.stderr
    try:
        yield lab
    finally:
        lab.cli("destroy", str(lab.site_file), "--confirm-prod", "lvlab", timeout=900)
        daemons.stop(say=lambda m: print(f"lab: {m}"), only=started)
        print("libvirt lab timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in TIMINGS.items()))


def tag() -> str:
    import hashlib

    return "pv" + hashlib.sha1(b"lvlab").hexdigest()[:4]


def conn():
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt.open("qemu:///system")


def site_domains() -> set[str]:
    return {d.name() for d in conn().listAllDomains(0) if d.name().startswith("lvlab-")}


def port_tags() -> dict[str, int | None]:
    from provisioner.backends.libvirt import ovs

    return {name: port.tag for name, port in ovs.ports().items() if name.startswith(tag())}


def tap_of(machine: str, index: int = 0) -> str:
    import hashlib

    return f"{tag()}v{hashlib.sha1(machine.encode()).hexdigest()[:5]}{index}"


def test_plan_on_an_empty_hypervisor_lists_everything(lab):
    result = lab.cli("plan", str(lab.site_file), "--json")
    assert result.rc == 0, result.stderr
    assert {(c["kind"], c["name"], c["action"]) for c in result.json["changes"]} == {
        ("segment", "mgmt", "create"), ("segment", "dev", "create"),
        ("segment", "test", "create"), ("segment", "prod", "create"),
        ("gateway", "gateway", "create"), ("host", "dev-web1", "create"),
    }  # fmt: skip
    assert site_domains() == set()


def test_apply_builds_the_guests_and_runs_the_roles(lab):
    clock = time.monotonic()
    result = lab.cli("apply", str(lab.site_file), "--json", timeout=2400)
    TIMINGS["first apply (guests + roles)"] = time.monotonic() - clock
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.json["status"] == "successful"
    assert site_domains() == {"lvlab-gateway", "lvlab-dev-web1"}


def test_guest_disks_are_linked_clones_of_the_image(lab):
    from provisioner.backends.libvirt import guest_image, xmlspec

    image = guest_image.current()
    for domain in site_domains():
        disks = xmlspec.domain_disks(conn().lookupByName(domain).XMLDesc(0))
        disk = next(d for d in disks if d.endswith(f"{domain}.qcow2"))
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", disk], capture_output=True,
                                         text=True, check=True).stdout)  # fmt: skip
        assert info.get("backing-filename", "").endswith(image.volume("disk")), (domain, info)
        assert info["actual-size"] < image.disk.stat().st_size / 2, f"{domain}: a linked clone holds only its writes"


def test_each_guest_answers_ssh_with_its_pinned_host_key_and_has_one_interface(lab):
    state = lab.state
    for name, address in (("dev-web1", "10.93.10.11"),):
        result = ssh(state.controller_key, state.known_hosts, "provision", address, "hostname; ip -j -4 address")
        assert result.returncode == 0, f"{name}: {result.stderr}"
        hostname, addresses = result.stdout.split("\n", 1)
        assert hostname == name
        interfaces = [i for i in json.loads(addresses) if i["ifname"] != "lo"]
        found = [(i["ifname"], a["local"]) for i in interfaces for a in i["addr_info"]]
        assert found == [("eth0", address)]


def test_each_port_carries_its_environments_vlan_tag(lab):
    tags = port_tags()
    assert tags[tap_of("dev-web1")] == 931
    assert [tags[tap_of("gateway", i)] for i in range(4)] == [930, 931, 932, 933]
    assert tags[f"{tag()}-mgmt"] == 930, "the controller's own port is on the management VLAN"


def test_second_apply_changes_nothing(lab):
    """The plan is empty, a second `provision apply` touches no guest, network or port, and the role run
    reports nothing changed."""
    assert lab.cli("plan", str(lab.site_file), "--json").json["changes"] == []
    hypervisor = conn()
    before = {d.name(): (d.UUIDString(), d.ID()) for d in hypervisor.listAllDomains(0)}
    networks = {n.name(): n.UUIDString() for n in hypervisor.listAllNetworks(0)}
    tags = port_tags()
    clock = time.monotonic()
    # --full: the roles run on every guest (a plain apply would leave the converged guests out)
    result = lab.cli("apply", str(lab.site_file), "--full", "--json", timeout=2400)
    TIMINGS["second apply (roles, nothing to change)"] = time.monotonic() - clock
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.json["stats"]["changed"] == 0 and result.json["stats"]["ok"] > 0
    assert {d.name(): (d.UUIDString(), d.ID()) for d in hypervisor.listAllDomains(0)} == before
    assert {n.name(): n.UUIDString() for n in hypervisor.listAllNetworks(0)} == networks
    assert port_tags() == tags


def test_verify_passes_on_the_guests(lab):
    clock = time.monotonic()
    result = lab.cli("verify", str(lab.site_file), "--keys", str(verify_keys()), "--json", timeout=900)
    TIMINGS["verify"] = time.monotonic() - clock
    assert result.rc == 0, result.stdout[-4000:] + result.stderr[-2000:]
    controls = result.json["controls"]
    print("controls on the libvirt guests:", {c: (v["pass"], v["fail"], v["skip"]) for c, v in controls.items()})
    for control in ("NET-1", "NET-2", "ACC-5", "CUE-1", "HYP-1"):
        assert controls[control]["pass"] > 0 and controls[control]["fail"] == 0, (control, controls[control])
    # NET-2 came from the controller's own probe on dev's segment (an access port of the site's switch with dev's
    # tag), not from dev-web1, whose root a developer may hold; and the probe is gone afterwards
    results = json.loads((Path(result.json["run_dir"]) / "results.json").read_text())
    net2 = [row for row in results["results"] if row["control"] == "NET-2"]
    assert net2 and all(row["status"] == "pass" for row in net2), net2
    matrix = [r for row in net2 for r in row["rows"]]
    assert matrix and {r["source"] for r in matrix} == {"probe@dev"}, {r["source"] for r in matrix}
    where = f"probe@dev: the controller's probe at 10.93.10.254/24 on {tag()}-ovs VLAN 931"
    assert all(where in row["evidence"] for row in net2), [row["evidence"] for row in net2]
    assert all(r["ok"] for r in matrix), [r for r in matrix if not r["ok"]]
    (v6,) = [r for r in matrix if r["port"] == "icmpv6"]
    assert v6["detail"].startswith("only the probe itself"), v6
    from provisioner.backends.libvirt import ovs

    assert not ovs.probe_ports(lab.site.name), "the probe's port is off the switch"
    assert not _probe_namespaces()


def test_moving_the_dev_port_to_the_prod_tag_is_detected_and_repaired(lab):
    from provisioner.backends import backend_for
    from provisioner.backends.libvirt import ovs

    dev_tap = tap_of("dev-web1")
    ovs.set_tag(dev_tap, 933)  # someone moves the dev guest's switch port into prod's VLAN
    plan = lab.cli("plan", str(lab.site_file), "--json")
    (change,) = plan.json["changes"]
    assert (change["action"], change["name"]) == ("update", "dev-web1")
    assert f"({dev_tap}) carries VLAN 933, expected 931" in change["detail"]
    status = lab.cli("status", str(lab.site_file), "--json").json
    assert any("VLAN 933" in d for r in status["machines"] if r["name"] == "dev-web1" for d in r["drift"])
    verify = lab.cli("verify", str(lab.site_file), "-k", "hypervisor_wiring", "--json", timeout=600)
    assert verify.rc == 1, verify.stdout
    assert verify.json["controls"]["NET-1"]["fail"] == 1
    # apply puts the port back on its own VLAN (here without the playbooks: the backend step alone)
    backend = backend_for(lab.site, lab.state)
    backend.apply(backend.plan(), print)
    assert port_tags()[dev_tap] == 931
    assert lab.cli("plan", str(lab.site_file), "--json").json["changes"] == []


def test_a_probe_left_by_a_killed_verify_is_not_drift(lab):
    """A verify killed while it probed leaves the probe's namespace and its access port on the switch: labelled as
    the controller's own, it is not something on the segment to explain (plan and status stay clean); the next
    verify replaces it, and destroy (next test) removes it with the switch."""
    from provisioner.backends import backend_for
    from provisioner.backends.libvirt import ovs

    point = backend_for(lab.site, lab.state).probe_point("dev")
    assert point is not None and point.where == f"{tag()}-ovs VLAN 931"
    point.create()
    assert ovs.ports()[point.port].is_probe and ovs.ports()[point.port].tag == 931
    assert lab.cli("plan", str(lab.site_file), "--json").json["changes"] == []
    status = lab.cli("status", str(lab.site_file), "--json").json
    assert not [d for r in status["machines"] for d in r["drift"]], status["machines"]
    assert point.port not in json.dumps(status)
    assert _probe_namespaces() == [point.namespace]


def test_destroy_leaves_no_domain_volume_network_or_switch_port_of_the_site(lab):
    import libvirt

    clock = time.monotonic()
    result = lab.cli("destroy", str(lab.site_file), "--confirm-prod", "lvlab", timeout=900)
    TIMINGS["destroy"] = time.monotonic() - clock
    assert result.rc == 0, result.stdout + result.stderr
    hypervisor = conn()
    assert site_domains() == set()
    assert not [n.name() for n in hypervisor.listAllNetworks(0) if n.name().startswith("lvlab-")]
    for pool in hypervisor.listAllStoragePools(0):
        try:
            volumes = pool.listVolumes() if pool.isActive() else []
        except libvirt.libvirtError:
            volumes = []
        assert not [v for v in volumes if v.startswith("lvlab-")], pool.name()
    from provisioner.backends.libvirt import ovs

    assert port_tags() == {}
    assert f"{tag()}-ovs" not in ovs.bridges()
    assert not [link.name for link in links.list_links() if link.name.startswith(tag())]
    assert not hostguard.present("lvlab")
    assert not _probe_namespaces(), "the probe a killed verify left is gone with the switch"
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert "10.93." not in routes


def _probe_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"provisioner-probe-{tag()}-")]
