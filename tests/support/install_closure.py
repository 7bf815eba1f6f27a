"""What the Makefile's apt line brings to a machine with nothing installed, and what the code needs that it would not.

The closure is apt's own answer (`apt-get install --simulate --no-install-recommends` against an empty dpkg status),
so it does not depend on what this machine happens to have. A fresh Debian 12 machine starts with the packages
of priority required and important (what debootstrap installs); they are part of the closure too.
Each need is found on this machine and its owner asked of dpkg: a program installed by hand from a package the
apt line does not bring is reported, even though it runs here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from provisioner.controller.needs import Need

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SPAWNERS = {"run", "Popen", "check_output", "check_call", "call", "which", "sh", "execvp", "execv"}
SPAWNING_MODULES = {"subprocess", "shutil", "os"}


def apt_line() -> list[str]:
    out = subprocess.run(["make", "-s", "--no-print-directory", "apt-packages"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return out.split()


def _records(text: str) -> list[dict[str, str]]:
    records = []
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", block, re.MULTILINE))
        if "Package" in fields:
            records.append(fields)
    return records


def fresh_base() -> set[str]:
    """Packages of priority required or important: what a new Debian 12 system has before anything is added."""
    text = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    base = {
        r["Package"] for r in _records(text)
        if r.get("Priority") in ("required", "important") and r.get("Architecture") in ("amd64", "all")
    }  # fmt: skip
    if not base:
        raise AssertionError("apt knows no packages: run `apt-get update` (make setup does) before this check")
    return base


def closure(packages: Iterable[str]) -> set[str]:
    """Every package apt would install for these on a machine with nothing installed, recommends left out."""
    with tempfile.NamedTemporaryFile(prefix="empty-dpkg-status-") as empty:
        result = subprocess.run(
            ["apt-get", "install", "--simulate", "-q", "--no-install-recommends",
             "-o", f"Dir::State::status={empty.name}", "-o", "Debug::NoLocking=1", *sorted(set(packages))],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"apt cannot resolve the apt line: {result.stderr.strip() or result.stdout[-500:]}")
    return {line.split()[1] for line in result.stdout.splitlines() if line.startswith("Inst ")}


class Graph:
    """Depends and Pre-Depends among the packages of one closure, as apt's candidate versions state them."""

    def __init__(self, packages: set[str]):
        text = subprocess.run(["apt-cache", "show", "--no-all-versions", *sorted(packages)], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
        self.packages = packages
        self.provided_by: dict[str, set[str]] = {}
        self.clauses: dict[str, list[list[str]]] = {}
        for record in _records(text):
            name = record["Package"]
            for virtual in _names(record.get("Provides", "")):
                self.provided_by.setdefault(virtual, set()).add(name)
            deps = ", ".join(filter(None, (record.get("Pre-Depends"), record.get("Depends"))))
            self.clauses[name] = [_names(clause.replace("|", ",")) for clause in deps.split(",") if clause.strip()]

    def reachable(self, roots: Iterable[str]) -> set[str]:
        """What installing roots pulls in, choosing within this closure wherever a dependency has alternatives."""
        seen: set[str] = set()
        todo = [r for r in roots if r in self.packages]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for alternatives in self.clauses.get(name, []):
                chosen = [a for a in alternatives if a in self.packages] or [
                    p for a in alternatives for p in sorted(self.provided_by.get(a, ()))
                ]
                if chosen and not any(c in seen for c in chosen):
                    todo.append(chosen[0])
        return seen


def _names(field: str) -> list[str]:
    return [re.split(r"[\s(:]", item.strip(), maxsplit=1)[0] for item in field.split(",") if item.strip()]


def owners(paths: Iterable[str]) -> dict[str, str]:
    """The package dpkg says owns each path (following links and the merged /usr), asked in one call."""
    candidates: dict[str, str] = {}
    for path in paths:
        resolved = str(Path(path).resolve())
        for candidate in (path, resolved, path.removeprefix("/usr"), resolved.removeprefix("/usr")):
            candidates.setdefault(candidate, path)
    result = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True, check=False)
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        package, where = line.split(": ", 1)
        original = candidates.get(where.strip())
        if original is not None:
            found.setdefault(original, package.split(",")[0].split(":")[0].strip())
    return found


def gaps(needs: Iterable[Need], brought: set[str]) -> list[str]:
    """Each need this machine lacks, or whose owning package a fresh machine with the apt line would not have."""
    needs = list(needs)
    where = {need.name: need.present() for need in needs}
    owned = owners(p for p in where.values() if p)
    found = []
    for need in needs:
        path = where[need.name]
        if path is None:
            found.append(f"{need.name} ({need.package}): not on this machine")
        elif path not in owned:
            found.append(f"{need.name}: {path} belongs to no Debian package (installed by hand?)")
        elif owned[path] not in brought:
            found.append(f"{need.name} ({owned[path]}): not brought by the Makefile's apt line without recommends")
    return found


def programs_in_code(folders: Iterable[Path]) -> dict[str, list[str]]:
    """Program names the Python code starts or looks up, by an AST scan: name -> places."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if ".venv" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                name = _spawned(node)
                if name and not (VENV_BIN / name).exists():  # the virtualenv's own programs come from pip
                    found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")  # type: ignore[attr-defined]
    return found


def _spawned(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    if isinstance(func, ast.Attribute):
        if not (isinstance(func.value, ast.Name) and func.value.id in SPAWNING_MODULES and func.attr in SPAWNERS):
            return None  # host.run(...) and the like run on a remote host, not here
    elif not (isinstance(func, ast.Name) and func.id in SPAWNERS):
        return None
    first = node.args[0]
    if isinstance(first, ast.List | ast.Tuple) and first.elts:
        first = first.elts[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and re.fullmatch(r"[\w.+-]+", first.value):
        return first.value
    return None
