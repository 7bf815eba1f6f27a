"""The lookup provisioner.separation.secret, run by Ansible itself: where a secret comes from, what it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def _run(tmp_path: Path, names: list[str], extra_env: dict[str, str], secrets_dir: str | None) -> tuple[int, str, dict]:
    """A localhost play outside the repository that looks the names up; the collection is found where a playbook
    of one's own finds it once installed (ANSIBLE_COLLECTIONS_PATH: the repository's playbooks/collections)."""
    out = tmp_path / "looked-up.json"
    play = {
        "name": "Look secrets up",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"provisioner_secrets_dir": secrets_dir} if secrets_dir else {},
        "tasks": [
            {
                "name": "Write what the lookup returned",
                "ansible.builtin.copy": {
                    "content": "{{ query('provisioner.separation.secret', *names) | to_json }}",
                    "dest": str(out),
                    "mode": "0600",
                },
            }
        ],
    }
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([play]))
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps({"names": names})],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
             "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_LOCALHOST_WARNING": "0", **extra_env},
    )  # fmt: skip
    values = json.loads(out.read_text()) if result.returncode == 0 else {}
    return result.returncode, result.stdout + result.stderr, values


def _folder(tmp_path: Path, **secrets: str) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name, value in secrets.items():
        (folder / name).write_text(value + "\n")
    return folder


def test_a_secret_comes_from_the_folder_the_inventory_names_as_written(tmp_path):
    """The file's value, without its newline; braces in it stay text (a password is never a template)."""
    folder = _folder(tmp_path, **{"db-app-dev": "s3cret {{ 7 * 6 }}", "log-ca.pem": "PEM"})
    rc, out, values = _run(tmp_path, ["db-app-dev", "log-ca.pem"], {}, str(folder))
    assert rc == 0, out
    assert values == ["s3cret {{ 7 * 6 }}", "PEM"]


def test_an_injected_environment_variable_wins_over_the_folder(tmp_path):
    """How an AWX credential hands a secret to the play: PROVISIONER_SECRET_<NAME>."""
    folder = _folder(tmp_path, **{"db-app-prod": "from-the-file"})
    rc, out, values = _run(tmp_path, ["db-app-prod"], {"PROVISIONER_SECRET_DB_APP_PROD": "from-awx"}, str(folder))
    assert rc == 0, out
    assert values == ["from-awx"]


def test_the_folder_may_come_from_the_environment(tmp_path):
    folder = _folder(tmp_path, **{"db-app-test": "t"})
    rc, out, values = _run(tmp_path, ["db-app-test"], {"PROVISIONER_SECRETS_DIR": str(folder)}, None)
    assert rc == 0, out
    assert values == ["t"]


def test_a_missing_secret_fails_naming_every_place_looked_at(tmp_path):
    folder = _folder(tmp_path)
    rc, out, _ = _run(tmp_path, ["db-alice-prod"], {}, str(folder))
    assert rc != 0
    assert "secret 'db-alice-prod' not found" in out
    assert "PROVISIONER_SECRET_DB_ALICE_PROD" in out and str(folder / "db-alice-prod") in out


def test_without_a_folder_or_variable_the_message_says_so(tmp_path):
    rc, out, _ = _run(tmp_path, ["db-app-dev"], {}, None)
    assert rc != 0
    assert "neither variable provisioner_secrets_dir nor environment variable PROVISIONER_SECRETS_DIR" in out


def test_a_name_that_walks_out_of_the_folder_is_refused(tmp_path):
    """A host name is part of some secret names; one that climbs out of the folder reads nothing."""
    folder = _folder(tmp_path)
    (tmp_path / "outside").write_text("not a secret of the site")
    rc, out, _ = _run(tmp_path, ["../outside"], {}, str(folder))
    assert rc != 0
    assert "'../outside' is not a secret name" in out
    assert "not a secret of the site" not in out


def test_the_lookup_documents_itself(tmp_path):
    shown = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "lookup", "provisioner.separation.secret"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "PROVISIONER_SECRET_" in shown.stdout
