"""A fresh machine gets everything the code runs from the Makefile's apt line alone: no recommends, no hand installs."""

from __future__ import annotations

import functools

import pytest
from install_closure import ROOT, Graph, apt_line, closure, fresh_base, gaps, programs_in_code

from provisioner.controller import needs as host_needs
from provisioner.controller.needs import NEEDS, Need, Use


@functools.cache
def _fresh_machine() -> tuple[frozenset[str], frozenset[str], Graph]:
    """The base of a new Debian 12 system, the apt line's closure (apt's own answer) and its dependency graph."""
    brought = closure(apt_line())
    return frozenset(fresh_base()), frozenset(brought), Graph(brought)


def _closure(dropped: str | None = None) -> set[str]:
    base, brought, graph = _fresh_machine()
    if dropped is None:
        return set(base | brought)
    return set(base) | graph.reachable(p for p in apt_line() if p != dropped)


def test_every_need_of_the_code_comes_from_the_apt_line():
    problems = gaps(NEEDS, set(_closure()))
    assert problems == [], "a fresh machine would lack:\n" + "\n".join(problems)


def test_every_program_the_code_starts_is_registered():
    """The AST scan of the code and the tests finds no program outside the registry (shell.run refuses them too)."""
    found = programs_in_code([ROOT / "provisioner", ROOT / "tests", ROOT / "bench", ROOT / "molecule"])
    assert "lxc-start" in found and "ssh-keygen" in found, "the scan finds the programs it must"
    unregistered = {}
    for name, places in found.items():
        try:
            host_needs.program(name)
        except host_needs.UnregisteredProgram:
            unregistered[name] = places
    assert unregistered == {}, f"programs the code runs that host_needs.NEEDS does not list: {unregistered}"


def test_the_apt_line_holds_only_what_a_need_or_a_build_calls_for():
    named = host_needs.packages()
    unneeded = [p for p in apt_line() if p not in named]
    assert unneeded == [], f"on the apt line but needed by nothing in host_needs.NEEDS: {unneeded}"


def test_the_dependency_graph_agrees_with_apt():
    """The graph that answers "what if this package were dropped" gives apt's own closure for the whole line."""
    _base, brought, graph = _fresh_machine()
    assert graph.reachable(apt_line()) == set(brought)


def test_no_lxc_template_or_its_helpers_are_needed():
    brought = _closure()
    assert "lxc-templates" not in brought and "distro-info" not in brought
    assert not any("lxc-create" in need.name or "templates" in need.name for need in NEEDS)


@pytest.mark.parametrize("package", sorted(host_needs.packages() & set(apt_line())))
def test_dropping_a_needed_package_from_the_apt_line_is_caught(package):
    brought = set(_closure(package))
    needs = [need for need in NEEDS if need.package == package]
    problems = gaps(needs, brought)
    if package in brought:  # another package on the line depends on it: dropping it changes nothing
        assert problems == []
        return
    assert problems, f"dropping {package} from the apt line went unnoticed"
    assert all("not brought by the Makefile's apt line" in p for p in problems), problems


def test_a_program_from_a_package_outside_the_closure_is_reported():
    """The dirty-machine case: a program that runs here, from a package the apt line does not bring."""
    brought = set(_closure()) - {"graphviz"}
    problems = gaps([Need("dot", "graphviz", Use.REPORT, "the diagram")], brought)
    assert problems == ["dot (graphviz): not brought by the Makefile's apt line without recommends"]


def test_shell_run_refuses_an_unregistered_program():
    from provisioner.controller.shell import run

    unknown = "cowsay"
    with pytest.raises(host_needs.UnregisteredProgram, match="not listed"):
        run([unknown, "moo"])


def test_the_peer_client_runs_only_its_own_virtualenv():
    """The peer-client test (tests/peer) starts no host program: the virtualenv is made by this interpreter (its
    ensurepip from python3-venv, a registered need) and everything else runs from that virtualenv's bin, which pip
    fills from the pinned packages."""
    import re

    import peer_venv

    host_needs.program("/usr/lib/python3.11/ensurepip/__init__.py")
    sources = [ROOT / "tests" / "support" / "peer_venv.py", *sorted((ROOT / "tests" / "peer").glob("*.py"))]
    started = set()
    for path in sources:
        text = path.read_text()
        started |= set(re.findall(r'(?:venv|location\(\)) / "bin" / "([\w.+-]+)"', text))
        assert "shutil.which" not in text, f"{path.name} looks a program up on PATH"
    assert started and started <= set(peer_venv.PROGRAMS), f"started from the peer virtualenv: {started}"
    assert any(pin.startswith("ansible==") for pin in peer_venv.PINS), "ansible-playbook comes from the ansible pin"
