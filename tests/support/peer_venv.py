"""The peer client's own virtualenv: the community Proxmox Ansible modules, as an SME would install them.

Kept apart from the project's virtualenv (whose ansible-core and requests the kit pins for itself) and cached
under /var/cache/provisioner, keyed by the pins and the interpreter, so only the first run downloads anything.
Made once per machine under a file lock: two pytest-xdist workers asking at once wait for one install.

What it starts: the interpreter of the project's virtualenv (`sys.executable -m venv`, whose ensurepip comes
from python3-venv on the Makefile's apt line) and, inside the new virtualenv, its own `python -m pip` and the
console scripts pip installed there (`ansible-playbook`). None is looked up on PATH, so none is a host need.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Pinned exactly: the test states what a given release of the modules does against the fake.
ANSIBLE = "ansible==12.3.0"  # ansible-core 2.19, with community.proxmox and community.general
PINS = (ANSIBLE, "proxmoxer==2.3.0", "requests==2.32.5")
CACHE = Path(os.environ.get("PROVISION_PEER_VENV_CACHE", "/var/cache/provisioner"))
PROGRAMS = ("python", "ansible-playbook")  # what the test runs from the peer virtualenv, all from pip


def key() -> str:
    text = "\n".join((*PINS, f"python {sys.version_info.major}.{sys.version_info.minor}"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def location() -> Path:
    return CACHE / f"peer-venv-{key()}"


def ensure() -> Path:
    """The virtualenv's folder, made and installed first if needed (reused once `.installed` is written)."""
    venv = location()
    done = venv / ".installed"
    if done.exists():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"peer-venv-{key()}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        python = str(venv / "bin" / "python")
        result = subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"installing {' '.join(PINS)} into {venv} failed:\n{result.stderr[-3000:]}")
        for program in PROGRAMS:
            if not (venv / "bin" / program).exists():
                raise RuntimeError(f"{venv} has no bin/{program} after the install")
        done.write_text("\n".join(PINS) + "\n")
    return venv


if __name__ == "__main__":
    print(ensure())
