"""The libvirt backend's plan/apply/destroy logic against libvirt's own test driver (test:///default).

The test driver is real libvirt (the same API, XML parser and object model as libvirtd) holding its state in
this process, so these tests are fast; guests never boot there, so wiring the controller, waiting for SSH and
running the roles are left to the end-to-end lab (tests/lab/test_libvirt_lab.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, run_cli, write_site
from rich.console import Console

from provisioner.ansible_run.progress import Progress
from provisioner.backends import backend_for
from provisioner.backends.libvirt import xmlspec
from provisioner.backends.libvirt.backend import LibvirtBackend
from provisioner.engine import operations
from provisioner.errors import BackendError, RefusedError
from provisioner.planning.planner import Action
from provisioner.site.load import load_site

libvirt = pytest.importorskip("libvirt")
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

LAB_SITE_FILE = ROOT / "tests" / "lab" / "sites" / "lvlab.yml"
URI = "test:///default"


def api_site_data(name: str = "lvapi", **backend: object) -> dict:
    """The lab's site, plus a prod guest (costless here: the test driver boots nothing)."""
    data = yaml.safe_load(LAB_SITE_FILE.read_text())
    data["site"] = name
    data["hosts"].append({"name": "prod-web1", "environment": "prod", "address": "10.93.30.11"})
    data["backend"] = {**data["backend"], "uri": URI, "pool": "default-pool", "pool_path": "/default-pool", **backend}
    return data


@pytest.fixture(scope="module")
def hypervisor():
    """One test-driver connection held open for the module: the driver's state lives while a connection does."""
    conn = libvirt.open(URI)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def api(hypervisor, tmp_path_factory):
    base = tmp_path_factory.mktemp("lvapi")
    site_file = write_site(base / "inventories" / "lvapi", api_site_data())
    state_dir = base / "state"
    mp = pytest.MonkeyPatch()
    mp.setenv("PROVISION_STATE_DIR", str(state_dir))
    backend = backend_for(load_site(site_file))
    assert isinstance(backend, LibvirtBackend)
    pool = hypervisor.storagePoolLookupByName("default-pool")
    for part, fmt in (("disk", "qcow2"), ("kernel", "raw"), ("initrd", "raw")):
        # the base image as the pool holds it after `provision image build` and a first apply imported it
        pool.createXML(xmlspec.volume_xml(backend.image.volume(part), 1 << 30, fmt), 0)
    yield site_file
    mp.undo()


def fresh(site_file: Path) -> LibvirtBackend:
    backend = backend_for(load_site(site_file))
    assert isinstance(backend, LibvirtBackend)
    return backend


def apply(site_file: Path) -> list[str]:
    said: list[str] = []
    backend = fresh(site_file)
    backend.apply(backend.plan(), said.append)
    return said


def domains(conn) -> dict[str, object]:
    return {d.name(): d for d in conn.listAllDomains(0)}


def networks(conn) -> dict[str, object]:
    return {n.name(): n for n in conn.listAllNetworks(0)}


def quiet() -> Progress:
    return Progress(Console(file=io.StringIO()), quiet=True)


def test_plan_on_an_empty_hypervisor_lists_everything_to_create(api):
    plan = fresh(api).plan()
    assert {(str(c.kind), c.name) for c in plan.changes} == {
        ("segment", "mgmt"), ("segment", "dev"), ("segment", "test"), ("segment", "prod"),
        ("gateway", "gateway"), ("host", "dev-web1"), ("host", "prod-web1"),
    }  # fmt: skip
    assert {c.action for c in plan.changes} == {Action.CREATE}


def test_apply_builds_labelled_networks_with_a_vlan_portgroup_per_segment(api, hypervisor):
    said = apply(api)
    assert any("creating host dev-web1" in line for line in said), said
    backend = fresh(api)
    nets = networks(hypervisor)
    for key, vlan in (("mgmt", 930), ("dev", 931), ("test", 932), ("prod", 933)):
        xml = nets[f"lvapi-{key}"].XMLDesc(0)
        assert xmlspec.read_labels(xml, "segment")["segment"] == key
        shape = xmlspec.network_shape(xml)
        assert shape.bridge == backend.ovs_bridge
        assert shape.openvswitch
        assert shape.portgroups == {key: vlan}
        assert nets[f"lvapi-{key}"].isActive()


def test_apply_builds_guests_as_linked_clones_with_a_seed_and_bounded_resources(api, hypervisor):
    backend = fresh(api)
    doms = domains(hypervisor)
    assert {"lvapi-gateway", "lvapi-dev-web1", "lvapi-prod-web1"} <= set(doms)
    for name, nics in (("lvapi-gateway", ["mgmt", "dev", "test", "prod"]), ("lvapi-dev-web1", ["dev"])):
        dom = doms[name]
        xml = dom.XMLDesc(0)
        labels = xmlspec.read_labels(xml, "machine")
        assert labels["site"] == "lvapi" and labels["state"] == "ready"
        assert labels["host_key"].startswith("ssh-ed25519 ")
        assert dom.isActive()
        assert [n.portgroup for n in xmlspec.domain_nics(xml)] == nics
        assert "<domain type='qemu'" in xml
        assert "<tb-cache unit='KiB'>131072</tb-cache>" in xml  # 128 MiB
        assert dom.maxMemory() == 512 * 1024  # small is 1024 MiB, capped by max_memory_mib
        disk, seed = xmlspec.domain_disks(xml)
        pool = hypervisor.storagePoolLookupByName("default-pool")
        assert pool.storageVolLookupByName(Path(disk).name).path() == disk
        assert pool.storageVolLookupByName(Path(seed).name).path() == seed
    known = backend.state.known_hosts.read_text()
    assert {line.split()[0] for line in known.splitlines()} == {"10.93.0.254", "10.93.10.11", "10.93.30.11"}


def test_after_apply_the_plan_is_empty_and_a_second_apply_changes_nothing(api, hypervisor):
    before = {name: (d.UUIDString(), d.ID()) for name, d in domains(hypervisor).items()}
    nets_before = {name: n.UUIDString() for name, n in networks(hypervisor).items()}
    assert fresh(api).plan().changes == []
    said = apply(api)
    assert not [line for line in said if "creat" in line or "remov" in line], said
    assert {name: (d.UUIDString(), d.ID()) for name, d in domains(hypervisor).items()} == before
    assert {name: n.UUIDString() for name, n in networks(hypervisor).items()} == nets_before


def test_isolation_reads_the_domain_xml_and_names_a_host_folder_shared_in(api, hypervisor):
    """HYP-1 on libvirt: the guests are full VMs with nothing of the host handed in; a host folder added to a
    guest's definition is named (it takes effect at the guest's next start)."""
    backend = fresh(api)
    machines = [m.name for m in backend.desired.machines if m.environment == "dev"]
    found = backend.isolation(machines)
    assert all(not f.shares_kernel and f.problems == [] for f in found.values()), found
    domain = hypervisor.lookupByName(backend.domain(machines[0]))
    original = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    shared = "<filesystem type='mount'><source dir='/srv/host'/><target dir='share'/></filesystem>"
    hypervisor.defineXML(original.replace("</devices>", shared + "</devices>"))
    try:
        (problem,) = fresh(api).isolation(machines[:1])[machines[0]].problems
        assert problem == (
            "<filesystem> dir=/srv/host: a host folder shared into the guest (in its definition: at its next start)"
        )
    finally:
        hypervisor.defineXML(original)
    assert fresh(api).isolation(machines[:1])[machines[0]].problems == []


def test_a_guest_moved_to_another_segment_is_drift(api, hypervisor):
    dom = domains(hypervisor)["lvapi-dev-web1"]
    original = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    moved = original.replace("network='lvapi-dev' portgroup='dev'", "network='lvapi-prod' portgroup='prod'")
    assert moved != original
    hypervisor.defineXML(moved)  # its persistent config now says prod ...
    dom.destroy()
    dom.create()  # ... and it runs that way
    plan = fresh(api).plan()
    (change,) = plan.changes
    assert (change.action, change.name) == (Action.UPDATE, "dev-web1")
    assert "expected lvapi-dev portgroup dev" in change.detail
    status = operations.status(load_site(api))
    row = next(r for r in status["machines"] if r["name"] == "dev-web1")
    assert any("lvapi-prod" in d for d in row["drift"])
    # put it back (the test driver cannot update a running guest's devices; libvirtd can, see the lab test)
    dom.destroy()
    hypervisor.defineXML(original)
    dom.create()
    assert fresh(api).plan().changes == []


def test_a_stopped_network_is_drift_and_apply_restarts_it(api, hypervisor):
    networks(hypervisor)["lvapi-dev"].destroy()
    (change,) = fresh(api).plan().changes
    assert (change.action, str(change.kind), change.name) == (Action.UPDATE, "segment", "dev")
    assert "network is not active" in change.detail
    apply(api)
    assert networks(hypervisor)["lvapi-dev"].isActive()
    assert fresh(api).plan().changes == []


def test_a_guest_left_half_built_is_replaced_by_the_next_apply(api, hypervisor):
    dom = domains(hypervisor)["lvapi-dev-web1"]
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    # what an apply killed between defining the guest and starting it leaves: labels still say 'building'
    dom.destroy()
    hypervisor.defineXML(xml.replace('state="ready"', 'state="building"').replace("state='ready'", "state='building'"))
    assert xmlspec.read_labels(domains(hypervisor)["lvapi-dev-web1"].XMLDesc(0), "machine")["state"] == "building"
    (change,) = fresh(api).plan().changes
    assert (change.action, change.name) == (Action.REPLACE, "dev-web1")
    said = apply(api)
    assert any("removing host dev-web1" in line for line in said), said
    dom = domains(hypervisor)["lvapi-dev-web1"]
    assert dom.isActive()
    assert xmlspec.read_labels(dom.XMLDesc(0), "machine")["state"] == "ready"
    assert fresh(api).plan().changes == []


def test_a_stopped_guest_is_started(api, hypervisor):
    domains(hypervisor)["lvapi-prod-web1"].destroy()
    (change,) = fresh(api).plan().changes
    assert (change.action, change.name) == (Action.START, "prod-web1")
    apply(api)
    assert domains(hypervisor)["lvapi-prod-web1"].isActive()


def test_foreign_domains_and_networks_are_never_touched(api, hypervisor):
    template = domains(hypervisor)["lvapi-dev-web1"].XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    unlabelled = _renamed(_without_metadata(template), "someones-vm")
    other_site = _renamed(template.replace('site="lvapi"', 'site="other"').replace("site='lvapi'", "site='other'"),
                          "other-dev-web1")  # fmt: skip
    for xml in (unlabelled, other_site):
        hypervisor.defineXML(xml)
    hypervisor.networkDefineXML(
        "<network><name>someones-net</name><forward mode='bridge'/><bridge name='br9'/></network>"
    )
    assert fresh(api).plan().changes == []
    assert set(fresh(api).discover().machines) == {"gateway", "dev-web1", "prod-web1"}
    operations.destroy(load_site(api), quiet(), environments=["dev"])
    assert {"someones-vm", "other-dev-web1"} <= set(domains(hypervisor))
    assert "lvapi-dev-web1" not in domains(hypervisor)
    assert "lvapi-dev" not in networks(hypervisor) and "someones-net" in networks(hypervisor)


def test_a_foreign_domain_under_the_sites_name_is_refused_and_left_alone(api, hypervisor):
    foreign = _renamed(_without_metadata(domains(hypervisor)["someones-vm"].XMLDesc(0)), "lvapi-dev-web1")
    hypervisor.defineXML(foreign)
    backend = fresh(api)
    with pytest.raises(BackendError, match="lvapi-dev-web1 exists but does not carry the labels"):
        backend.apply(backend.plan(), lambda _m: None)
    dom = domains(hypervisor)["lvapi-dev-web1"]
    assert xmlspec.read_labels(dom.XMLDesc(0), "machine") is None, "the foreign domain was not touched"
    dom.undefine()
    apply(api)
    assert fresh(api).plan().changes == []


def test_destroying_production_needs_the_sites_name(api, hypervisor):
    with pytest.raises(RefusedError, match="--confirm-prod lvapi"):
        operations.destroy(load_site(api), quiet(), environments=["prod"])
    assert "lvapi-prod-web1" in domains(hypervisor)


def test_destroy_leaves_nothing_of_the_site_and_everything_else(api, hypervisor):
    pool = hypervisor.storagePoolLookupByName("default-pool")
    operations.destroy(load_site(api), quiet(), confirm_prod="lvapi")
    assert not [n for n in domains(hypervisor) if n.startswith("lvapi-")]
    assert not [n for n in networks(hypervisor) if n.startswith("lvapi-")]
    assert not [v for v in pool.listVolumes() if v.startswith("lvapi-")]
    assert fresh(api).discover().empty
    assert {"someones-vm", "other-dev-web1"} <= set(domains(hypervisor))
    assert "someones-net" in networks(hypervisor)
    assert [v for v in pool.listVolumes() if v.startswith("provisioner-guest-")], "the base image stays"


def test_bridge_mode_puts_each_segment_on_its_own_host_bridge(hypervisor, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    bridges = {"mgmt": "br930", "dev": "br931", "test": "br932", "prod": "br933"}
    data = api_site_data("lvbr", network_mode="bridge", bridges=bridges)
    del data["hosts"][1:]
    site_file = write_site(tmp_path / "lvbr", data)
    backend = fresh(site_file)
    backend.apply(backend.plan(), lambda _m: None)
    for key, bridge in bridges.items():
        shape = xmlspec.network_shape(networks(hypervisor)[f"lvbr-{key}"].XMLDesc(0))
        assert (shape.bridge, shape.openvswitch, shape.portgroups) == (bridge, False, {})
    nics = xmlspec.domain_nics(domains(hypervisor)["lvbr-dev-web1"].XMLDesc(0))
    assert [(n.network, n.portgroup) for n in nics] == [("lvbr-dev", None)]
    assert fresh(site_file).plan().changes == []
    operations.destroy(load_site(site_file), quiet(), confirm_prod="lvbr")
    assert not [n for n in domains(hypervisor) if n.startswith("lvbr-")]


def test_an_access_network_is_a_network_of_its_own_with_a_gateway_leg_and_no_guest(
    api, hypervisor, tmp_path, monkeypatch
):
    """Issue 18: people's workstations connect to an access network; libvirt builds it like a segment (its own
    network, its VLAN on the portgroup), the gateway gets a leg on it, and no guest is ever placed there."""
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    data = api_site_data("lvacc")
    data["access_networks"] = [{"name": "office", "cidr": "10.93.50.0/24", "reaches": ["dev", "test"], "vlan": 950}]
    del data["hosts"][1:]
    site_file = write_site(tmp_path / "lvacc", data)
    backend = fresh(site_file)
    plan = backend.plan()
    assert (Action.CREATE, "office") in {(c.action, c.name) for c in plan.changes if str(c.kind) == "segment"}
    backend.apply(plan, lambda _m: None)
    xml = networks(hypervisor)["lvacc-office"].XMLDesc(0)
    assert xmlspec.read_labels(xml, "segment")["segment"] == "office"
    assert xmlspec.network_shape(xml).portgroups == {"office": 950}
    placed = {
        name: [n.portgroup for n in xmlspec.domain_nics(dom.XMLDesc(0))]
        for name, dom in domains(hypervisor).items()
        if name.startswith("lvacc-")
    }
    assert placed["lvacc-gateway"] == ["mgmt", "dev", "test", "prod", "office"]
    assert [name for name, legs in placed.items() if "office" in legs] == ["lvacc-gateway"]
    assert fresh(site_file).plan().changes == []
    operations.destroy(load_site(site_file), quiet(), confirm_prod="lvacc")
    assert "lvacc-office" not in networks(hypervisor)


def test_the_test_driver_gives_no_probe_point(api):
    """Its guests never run and its segments are on no switch of this machine: NET-2 keeps its fallback."""
    backend = fresh(api)
    assert [backend.probe_point(key) for key in ("dev", "test", "prod")] == [None, None, None]


def test_a_remote_hypervisor_gives_no_probe_point_and_is_not_even_asked(tmp_path, monkeypatch):
    """With a remote URI the segments are on another machine's switch, which the controller cannot join: no
    probe point (NET-2 attempts from the segment's first host), said without a connection to the hypervisor."""
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    backend = fresh(write_site(tmp_path / "lvremote", api_site_data("lvremote", uri="qemu+ssh://root@kvm1/system")))
    assert backend.probe_point("dev") is None
    assert not backend.wires_controller
    assert "conn" not in vars(backend), "no connection was opened to kvm1"


def test_bridge_mode_without_a_bridge_for_every_segment_is_refused_with_the_key_path(tmp_path):
    data = api_site_data("lvbad", network_mode="bridge", bridges={"mgmt": "br930", "dev": "br931", "qa": "br932"})
    result = run_cli("validate", str(write_site(tmp_path / "lvbad", data)))
    assert result.rc == 2, result.stdout + result.stderr
    assert "backend.bridges.qa: unknown segment 'qa'" in result.stderr
    assert "backend.bridges: network_mode 'bridge' needs the host bridge of segment 'prod'" in result.stderr


def test_an_unreachable_hypervisor_is_a_clear_error_and_touches_nothing(tmp_path):
    data = api_site_data("lvgone", uri="test:///nonexistent/hypervisor.xml")
    result = run_cli("plan", str(write_site(tmp_path / "lvgone", data)), env={"PROVISION_STATE_DIR": str(tmp_path)})
    assert result.rc == 1, result.stdout + result.stderr
    assert "cannot connect to libvirt at test:///nonexistent/hypervisor.xml (backend.uri)" in " ".join(
        result.stderr.split()
    )


def _without_metadata(xml: str) -> str:
    if "<metadata" not in xml:
        return xml
    start, end = xml.index("<metadata"), xml.index("</metadata>") + len("</metadata>")
    return xml[:start] + xml[end:]


def _renamed(xml: str, name: str) -> str:
    import re

    xml = re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", xml, count=1)
    xml = re.sub(r"<uuid>[^<]*</uuid>", "", xml, count=1)
    xml = re.sub(r"<target dev='[^']*'/>", "", xml)  # tap names are unique per host
    return re.sub(r"<mac address='[^']*'/>", "", xml)
