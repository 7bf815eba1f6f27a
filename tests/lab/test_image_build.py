"""A base image whose recipe names a package the mirror does not have fails clearly and leaves nothing behind."""

from __future__ import annotations

import pytest
from helpers import run_cli

from provisioner.backends.libvirt import guest_image
from provisioner.backends.lxc import base_image

pytestmark = pytest.mark.lab

MISSING = "provisioner-no-such-package"


def _leftovers(backend: str) -> list[str]:
    if backend == "lxc":
        lxcpath = base_image.lxc_path()
        return [p.name for p in lxcpath.glob(f"{base_image.base_name([MISSING])}*")]
    image = guest_image.current(extra_packages=[MISSING])
    return [p.name for p in image.directory.parent.glob(".building-*")] + (
        [image.directory.name] if image.directory.exists() else []
    )


@pytest.mark.parametrize("backend", ["lxc", "libvirt"])
def test_a_package_the_mirror_lacks_fails_with_exit_1_naming_it_and_leaves_no_image(backend):
    result = run_cli("image", "build", "--backend", backend, "--package", MISSING, timeout=900)
    output = result.stdout + result.stderr
    assert result.rc == 1, output
    assert f"the mirror cannot give: {MISSING}" in output and f"Unable to locate package {MISSING}" in output
    assert "Traceback" not in output
    assert _leftovers(backend) == []
