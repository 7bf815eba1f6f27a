"""`provision doctor`, `provision image build` and `provision image packages`: this machine, and the base images
hosts are cloned from."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.common import JsonOpt, SiteArg, emit, err, handled, load, out
from provisioner.engine import doctor as checkup
from provisioner.engine import images
from provisioner.engine.watch import service as watch_service
from provisioner.errors import ExitCode, InputError

app = typer.Typer()
image_app = typer.Typer(help="Base images the backends clone hosts from.", no_args_is_help=True)


class DoctorBackend(StrEnum):
    ALL = "all"
    LXC = "lxc"
    LIBVIRT = "libvirt"
    PROXMOX = "proxmox"


@app.command()
@handled()
def doctor(
    site: SiteArg = None,
    backend: Annotated[
        DoctorBackend | None,
        typer.Option("--backend", help="check for this backend instead of a site's (all: every backend)"),
    ] = None,
    suite: Annotated[bool, typer.Option("--suite", help="also what `make setup` and the test suite need")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="list every check, not only what lacks")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check this machine before anything runs: programs, kernel features, disk, daemons. Exit 2 if something lacks."""
    required_daemons = False
    watcher = None
    if backend is None:
        loaded = load(site)
        backends: set[str] = {loaded.model.backend.type}
        watcher = watch_service.scheduler_of(loaded.name)
        uri = getattr(loaded.model.backend, "uri", "")
        required_daemons = loaded.model.backend.type == "libvirt" and uri.startswith("qemu:///")
    elif site is not None:
        raise InputError("name a site or --backend, not both")
    else:
        backends = set(checkup.BACKEND_USES) if backend == DoctorBackend.ALL else {backend.value}
    findings = checkup.examine(backends, suite=suite, libvirt_daemons_required=required_daemons, watcher=watcher)
    failed = [f for f in findings if not f.ok]
    fix = checkup.fix_command(findings)
    if as_json:
        emit({"ok": not failed, "backends": sorted(backends), "fix": fix, "findings": [f.__dict__ for f in findings]})
    else:
        scope = f"{', '.join(sorted(backends))}{' and the test suite' if suite else ''}"
        shown = findings if verbose else failed
        if shown:
            table = Table(title=f"provision doctor: {scope}")
            for column in ("check", "status", "detail"):
                table.add_column(column, overflow="fold")
            for f in shown:
                status = "[green]ok[/green]" if f.ok else "[bold red]MISSING[/bold red]"
                table.add_row(f.check, status, escape(f.detail))
            out.print(table)
        for line in dict.fromkeys(f.fix for f in failed if f.fix and not f.package):
            err.print(f"to fix: {escape(line)}", highlight=False)
        if fix:
            err.print(f"to fix: {fix}   (or: make setup)", highlight=False)
        passed = len(findings) - len(failed)
        colour = "red" if failed else "green"
        out.print(f"[{colour}]doctor ({scope}): {passed} of {len(findings)} checks passed[/{colour}]", highlight=False)
    if failed:
        raise typer.Exit(int(ExitCode.INVALID))


class ImageBackend(StrEnum):
    ALL = "all"
    LXC = "lxc"
    LIBVIRT = "libvirt"


@image_app.command("build")
@handled()
def image_build(
    backend: Annotated[
        ImageBackend, typer.Option("--backend", help="which base image: the LXC lab's, the libvirt guests', or both")
    ] = ImageBackend.ALL,
    packages: Annotated[
        list[str] | None,
        typer.Option("--package", metavar="NAME", help="also bake this Debian package into the image (repeatable)"),
    ] = None,
) -> None:
    """Build the Debian base images hosts are cloned from (once; later calls do nothing); needs only the mirror."""
    extra = packages or []
    images.check_packages(extra)

    def say(message: str) -> None:
        out.print(f"· {message}", highlight=False)

    if backend in (ImageBackend.ALL, ImageBackend.LXC):
        rootfs = images.build_lxc_base(say, extra)
        out.print(f"LXC base image ready: {rootfs}", highlight=False)
    if backend in (ImageBackend.ALL, ImageBackend.LIBVIRT):
        directory = images.build_libvirt_guest(say, extra)
        out.print(f"libvirt guest image ready: {directory}", highlight=False)


@image_app.command("packages")
@handled()
def image_packages(as_json: JsonOpt = False) -> None:
    """The Debian packages a Proxmox template must carry (for virt-customize --install or apt-get install)."""
    names = images.proxmox_template_packages()
    if as_json:
        emit({"packages": names})
    else:
        out.print(",".join(names), highlight=False, soft_wrap=True)
