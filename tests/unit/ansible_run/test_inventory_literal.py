"""Text from the site file reaches Ansible as text: braces in a person's name are never run on the controller."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml
from helpers import ROOT, example_data, write_site

from provisioner.ansible_run.inventory import build_inventory, write_inventory
from provisioner.site.load import load_site

ANSIBLE = ROOT / ".venv" / "bin" / "ansible"


def _hostile_site(tmp_path: Path, marker: Path) -> Path:
    data = example_data()
    data["people"][0]["full_name"] = f"{{{{ lookup('pipe', 'touch {marker}') }}}} {{{{ 7 * 6 }}}}"
    return write_site(tmp_path / "inventories" / "hostile", data)


def _accounts_as_ansible_sees_them(inventory: Path, workdir: Path) -> list[dict[str, str]]:
    """Ask Ansible itself (on the controller, connection local) for the dev hosts' accounts variable."""
    result = subprocess.run(
        [str(ANSIBLE), "dev-app1", "-i", str(inventory), "-m", "ansible.builtin.debug", "-a", "var=env_accounts",
         "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={ROOT / '.venv' / 'bin' / 'python'}",
         "-o"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_LOCALHOST_WARNING": "False"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    payload = result.stdout.split("=>", 1)[1]
    return json.loads(payload)["env_accounts"]


def test_braces_in_a_full_name_arrive_as_written_and_run_nothing(tmp_path):
    marker = tmp_path / "ran-on-the-controller"
    site = load_site(str(_hostile_site(tmp_path, marker)))
    inventory = write_inventory(site, tmp_path / "ansible.cfg", tmp_path / "secrets")
    accounts = _accounts_as_ansible_sees_them(inventory, tmp_path)
    name = next(a["full_name"] for a in accounts if a["name"] == "alice")
    assert name == f"{{{{ lookup('pipe', 'touch {marker}') }}}} {{{{ 7 * 6 }}}}"
    assert not marker.exists()


def test_the_same_inventory_without_the_marking_would_run_the_template(tmp_path):
    """The check above can fail: a plain YAML dump of the same inventory lets Ansible evaluate the name."""
    marker = tmp_path / "ran-on-the-controller"
    site = load_site(str(_hostile_site(tmp_path, marker)))
    plain = tmp_path / "plain.yml"
    plain.write_text(yaml.safe_dump(build_inventory(site), sort_keys=False))
    accounts = _accounts_as_ansible_sees_them(plain, tmp_path)
    name = next(a["full_name"] for a in accounts if a["name"] == "alice")
    assert name.endswith(" 42")
    assert marker.exists()
