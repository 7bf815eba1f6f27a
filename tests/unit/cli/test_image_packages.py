"""`provision image packages`: what a Proxmox template must carry, the same list the lab images bake in plus the
two packages only the Proxmox path relies on (cloud-init, the guest agent the host key is read through)."""

from __future__ import annotations

import json

from helpers import ROOT, run_cli

from provisioner.backends.debian_rootfs import PACKAGES


def test_the_template_packages_are_the_roles_plus_cloud_init_and_the_guest_agent():
    shown = run_cli("image", "packages")
    assert shown.rc == 0, shown.stderr
    listed = shown.stdout.strip().split(",")
    assert set(listed) == {*PACKAGES, "cloud-init", "qemu-guest-agent"}, listed
    assert listed == sorted(listed) and "\n" not in shown.stdout.strip(), "one line, for virt-customize --install"
    as_json = run_cli("image", "packages", "--json")
    assert json.loads(as_json.stdout)["packages"] == listed


def test_the_proxmox_guide_builds_its_template_with_that_list():
    guide = (ROOT / "docs" / "proxmox.md").read_text()
    assert "`provision image packages`" in guide
    assert 'virt-customize -a debian-12-genericcloud-amd64.qcow2 --install "$PKGS"' in guide
