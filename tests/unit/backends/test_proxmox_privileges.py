"""The privilege preflight of the Proxmox backend (issue 19, item 9) and the least-privilege recipe of
docs/proxmox.md: the recipe in the docs is the one in code; a privilege-separated token made by it builds the
example site without a single 403; the same token missing one privilege, or with no ACL at all, is refused before
anything is touched, naming what is missing and where."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, write_site
from test_proxmox_backend import backend_for, converge
from test_proxmox_design import proxmox_data
from test_proxmox_vlan_census import plan_refused

from provisioner.backends.proxmox import privileges
from provisioner.backends.proxmox.names import Names
from provisioner.site.load import load_site

pytest.importorskip("proxmoxer")

DOCS = ROOT / "docs" / "proxmox.md"
TOKEN_ID = f"{privileges.USER}!{privileges.TOKEN}"
SITE = "pvpriv"


# ---- the recipe as docs/proxmox.md writes it ------------------------------------------------------------------------
@dataclass
class Recipe:
    variables: dict[str, str]
    loop: tuple[str, list[str]]  # the for loop's variable and its values
    commands: list[list[str]] = field(default_factory=list)  # pveum argument lists, $VARIABLES unexpanded
    v8_note: str = ""


def docs_recipe() -> Recipe:
    text = DOCS.read_text()
    section = text.split("## A least-privilege API token", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/proxmox.md: the least-privilege section has no sh block"
    lines = block.group(1).strip().splitlines()
    variables = dict(word.split("=", 1) for word in shlex.split(lines[0]))
    recipe = Recipe(variables, ("", []))
    for line in lines[1:]:
        loop = re.fullmatch(r"for (\w+) in ([\w ]+); do (pveum .*); done", line)
        if loop:
            recipe.loop = (loop.group(1), loop.group(2).split())
            line = loop.group(3)
        words = shlex.split(line)
        assert words[0] == "pveum", line
        recipe.commands.append(words[1:])
    note = re.search(r"replace `([^`]+)`\s+by `([^`]+)`", " ".join(section.split()))
    recipe.v8_note = f"{note.group(1)}>{note.group(2)}" if note else ""
    return recipe


def option(words: list[str], name: str) -> str:
    return words[words.index(f"--{name}") + 1]


def as_template(path: str) -> str:
    """`/pool/$SITE-$ENV` -> `/pool/{site}-{env}`."""
    return re.sub(r"\$(\w+)", lambda m: "{" + m.group(1).lower() + "}", path)


def test_the_docs_recipe_is_the_one_in_code():
    recipe = docs_recipe()
    roles = [c for c in recipe.commands if c[:2] == ["role", "add"]]
    assert len(roles) == 1 and roles[0][2] == privileges.ROLE
    assert option(roles[0], "privs").split(",") == list(privileges.role_privileges(9))
    nine_only, eight = recipe.v8_note.split(">")
    v8 = (set(privileges.role_privileges(9)) - set(nine_only.split(","))) | set(eight.split(","))
    assert sorted(v8) == list(privileges.role_privileges(8)), recipe.v8_note
    assert next(c for c in recipe.commands if c[:2] == ["user", "add"])[:3] == ["user", "add", privileges.USER]
    assert ["user", "token", "add", privileges.USER, privileges.TOKEN, "--privsep", "1"] in recipe.commands
    acls = [c for c in recipe.commands if c[:2] == ["acl", "modify"]]
    for words in acls:  # every ACL for the user and for the token (privilege separation: the intersection)
        assert (option(words, "users"), option(words, "tokens")) == (privileges.USER, TOKEN_ID), words
    grants = [privileges.Grant(as_template(w[2]), option(w, "roles"), option(w, "propagate") == "1") for w in acls]
    assert grants == list(privileges.RECIPE)
    assert set(recipe.variables) == {"SITE", "ZONE", "TEMPLATE", "STORAGE", "BRIDGE", "REALM"}
    assert recipe.loop[0] == "ENV"


def test_every_privilege_of_the_role_is_one_the_backend_needs():
    for major in (8, 9):
        needed = {p for need in privileges.NEEDS if major in need.versions for p in need.privileges}
        assert set(privileges.role_privileges(major)) <= needed, major


# ---- applying the recipe to the fake, through its API --------------------------------------------------------------
def run_recipe(fake: Any, site_dir: Path, drop_privilege: str = "", drop_grant: str = "") -> str:
    """The docs' pveum steps for the example site, as root through the API; returns the token's secret."""
    site = load_site(write_site(site_dir, site_data(fake)))
    values = {
        "SITE": site.name,
        "ZONE": Names(site.model).zone,
        "TEMPLATE": "9000",
        "STORAGE": "local-lvm",
        "BRIDGE": "vmbr0",
        "REALM": "pve",
    }
    api = fake.client(token_name="recipe")
    recipe = docs_recipe()
    start = len(fake.requests)
    major = 9 if fake.state.version.startswith("9") else 8
    secret = ""
    for words in recipe.commands:
        if words[:2] == ["acl", "modify"] and as_template(words[2]) == drop_grant:
            continue
        paths = [words[2]] if len(words) > 2 else []
        if recipe.loop[0] and paths and f"${recipe.loop[0]}" in paths[0]:
            paths = [paths[0].replace(f"${recipe.loop[0]}", e.name) for e in site.model.environments]
        paths = [re.sub(r"\$(\w+)", lambda m: values[m.group(1)], p) for p in paths]
        if words[:2] == ["role", "add"]:
            privs = list(privileges.role_privileges(major))  # the docs' 9.x list, or its 8.x variant (tested above)
            api.access.roles.post(roleid=words[2], privs=",".join(p for p in privs if p != drop_privilege))
        elif words[:2] == ["user", "add"]:
            api.access.users.post(userid=words[2], comment=option(words, "comment"))
        elif words[:3] == ["user", "token", "add"]:
            answer = api.access.users(words[3]).token(words[4]).post(privsep=option(words, "privsep"))
            secret = answer["value"]
        else:
            assert words[:2] == ["acl", "modify"], words
            for path in paths:
                api.access.acl.put(
                    path=path,
                    roles=option(words, "roles"),
                    propagate=option(words, "propagate"),
                    users=option(words, "users"),
                    tokens=option(words, "tokens"),
                )
    assert secret
    # The recipe is the sysadmin's, not the backend's: its role is valid for its own version only (8.x refuses
    # VM.GuestAgent.*, 9.x VM.Monitor), so it stays out of the backend's two-version contract record.
    with fake.recorder._guard:
        del fake.recorder.requests[start:]
    return secret


def site_data(fake: Any) -> dict:
    data = proxmox_data(port=fake.port, token={"id": TOKEN_ID, "env": "PROVISION_PVE_TOKEN"})
    data["site"] = SITE
    return data


@pytest.mark.parametrize("fake", ["9.1", "8.4"], indirect=True)
def test_a_privilege_separated_token_made_by_the_recipe_builds_the_example_site(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_PVE_TOKEN", run_recipe(fake, tmp_path / SITE))
    start = len(fake.requests)
    converge(backend_for(tmp_path, site_data(fake)))
    again = backend_for(tmp_path, site_data(fake))
    again.preflight()
    again.preflight_build()
    assert again.plan().empty
    sent = fake.requests[start:]
    assert [(r.method, r.path, r.reason) for r in sent if r.status == 403] == []
    assert len([r for r in sent if r.route.endswith("/clone")]) == 7, "the example site's VMs were not all built"
    assert any(r.route == "/access/acl" and r.method == "PUT" for r in sent), "the people's ACLs were not granted"


def _refused(fake: Any, tmp_path: Path, secret: str) -> str:
    path = write_site(tmp_path / "plan" / SITE, site_data(fake))
    return plan_refused(fake, path, env={"PROVISION_PVE_TOKEN": secret})


@pytest.mark.parametrize(
    ("drop_privilege", "drop_grant", "named"),
    [
        ("SDN.Allocate", "", "SDN.Allocate on /sdn/zones/{zone} (propagated) (create the VNets and subnets)"),
        ("VM.Config.Cloudinit", "", "VM.Config.Cloudinit on /pool/pvpriv-dev (set the VMs' cloud-init)"),
        ("Sys.Modify", "", "Sys.Modify on / (write the security groups and switch the datacenter firewall on)"),
        ("Permissions.Modify", "", "Permissions.Modify on /pool/pvpriv-prod (grant the people's ACLs on the pool)"),
        ("Realm.AllocateUser", "", "Realm.AllocateUser on /access/realm/pve (create and remove the people's users)"),
        ("", "/vms/{template}", "VM.Clone on /vms/9000 (clone the template)"),
        ("", "/storage/{storage}", "Datastore.AllocateSpace on /storage/local-lvm (clone the template's disks)"),
        (
            "",
            "/sdn/zones/localnetwork/{bridge}",
            "SDN.Use on /sdn/zones/localnetwork/vmbr0 (clone the template's NICs)",
        ),
    ],
)
def test_the_recipes_token_missing_one_privilege_is_refused_naming_it(
    fake, tmp_path, drop_privilege, drop_grant, named
):
    secret = run_recipe(fake, tmp_path / SITE, drop_privilege, drop_grant)
    zone = Names(load_site(write_site(tmp_path / SITE, site_data(fake))).model).zone
    stderr = _refused(fake, tmp_path, secret)
    assert f"backend.token: the token {TOKEN_ID} lacks " in stderr, stderr
    assert named.format(zone=zone) in stderr, stderr
    assert "docs/proxmox.md" in stderr


@pytest.mark.parametrize(
    ("fake", "agent"),
    [("9.1", "VM.GuestAgent.FileRead or VM.GuestAgent.Unrestricted"), ("8.4", "VM.Monitor")],
    indirect=["fake"],
)
def test_the_guest_agent_privilege_is_the_versions_own(fake, tmp_path, agent):
    """PVE 8 reads the guest agent with VM.Monitor; 9 dropped it for VM.GuestAgent.*."""
    secret = run_recipe(fake, tmp_path / SITE, drop_privilege=agent.split()[0])
    stderr = _refused(fake, tmp_path, secret)
    assert f"{agent} on /pool/pvpriv-dev (read the VMs' host keys" in stderr, stderr


def test_a_privilege_separated_token_without_acls_is_refused_not_planned_as_an_empty_cluster(fake, tmp_path):
    """It sees empty lists: without the preflight, plan would propose to create everything that exists."""
    fake.add_user(privileges.USER)
    fake.add_acl("/", "Administrator", user=privileges.USER)  # the user may do anything; its token got no ACL
    secret = fake.add_token(privileges.USER, privileges.TOKEN, privsep=True)
    stderr = _refused(fake, tmp_path, secret)
    assert f"the token {TOKEN_ID} lacks VM.Audit on /vms/9000 (read the template)" in stderr, stderr
    assert "It holds no privilege at all: a token with privilege separation" in stderr, stderr
