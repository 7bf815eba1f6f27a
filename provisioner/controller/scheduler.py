"""The controller's scheduler for `provision watch`: a systemd timer where systemd runs, a cron.d file otherwise.

Only files and the service manager: which command runs and when is the caller's. Every path is under a system
root (/ unless PROVISION_SYSTEM_ROOT names another folder), so unit tests write a temporary tree, never /etc.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provisioner.controller.shell import run
from provisioner.errors import BackendError, InputError

SYSTEM_ROOT_ENV = "PROVISION_SYSTEM_ROOT"
Kind = Literal["systemd", "cron"]
KINDS: tuple[str, ...] = ("auto", "systemd", "cron")
CRON_DAEMONS = ("cron", "crond")
# what cron and a systemd service start with: the tick runs ssh, nft, ip, lxc-* like an interactive root shell
CRON_PERCENT = "\\%"  # a bare % in a cron command ends it (the rest becomes its stdin)
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Systemctl = Callable[[Sequence[str]], str]  # runs `systemctl ARGS`, returns its output; raises on failure


def system_root() -> Path:
    override = os.environ.get(SYSTEM_ROOT_ENV)
    return Path(override) if override else Path("/")


def systemd_runs(root: Path | None = None) -> bool:
    """systemd is the init system (its documented test: /run/systemd/system exists)."""
    return ((root or system_root()) / "run" / "systemd" / "system").is_dir()


def real_systemctl(args: Sequence[str]) -> str:
    return run(["systemctl", *args], timeout=60).stdout


@dataclass(frozen=True)
class Job:
    """What the scheduler runs: `command` (absolute program first) with `environment`, as `user`, every
    `interval` seconds (systemd) or every minute (cron, the command loops within its minute)."""

    site: str
    command: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    interval: int
    user: str
    output_log: Path  # cron: where the command's own output goes (cron would mail it)


def unit_name(site: str) -> str:
    return f"provision-watch-{site}"


class Scheduler:
    """The files of one site's watcher under a system root, and the service manager to tell."""

    def __init__(self, root: Path | None = None, systemctl: Systemctl = real_systemctl):
        self.root = root or system_root()
        self.systemctl = systemctl

    @property
    def systemd_dir(self) -> Path:
        return self.root / "etc" / "systemd" / "system"

    @property
    def cron_dir(self) -> Path:
        return self.root / "etc" / "cron.d"

    def choose(self, wanted: str) -> Kind:
        """auto: systemd where it runs, cron otherwise; systemd where it does not run is refused."""
        if wanted not in KINDS:
            raise InputError(f"--scheduler {wanted!r}: allowed: {', '.join(KINDS)}")
        if wanted == "cron":
            return "cron"
        if systemd_runs(self.root):
            return "systemd"
        if wanted == "systemd":
            raise InputError(
                f"--scheduler systemd: systemd does not run on this machine ({self.root / 'run/systemd/system'} is "
                "missing); use --scheduler cron or auto"
            )
        return "cron"

    def files(self, kind: str, site: str) -> list[Path]:
        if kind == "systemd":
            name = unit_name(site)
            return [self.systemd_dir / f"{name}.service", self.systemd_dir / f"{name}.timer"]
        return [self.cron_dir / unit_name(site)]

    def install(self, kind: Kind, job: Job) -> list[Path]:
        """Write the files (mode 0644, root's to read) and, for systemd, reload and start the timer."""
        if kind == "systemd":
            service, timer = self.files(kind, job.site)
            texts = {service: service_unit(job), timer: timer_unit(job)}
        else:
            [cron] = self.files(kind, job.site)
            texts = {cron: cron_file(job)}
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(path, text)
        if kind == "systemd":
            self.systemctl(["daemon-reload"])
            self.systemctl(["enable", "--now", f"{unit_name(job.site)}.timer"])
        return list(texts)

    def remove(self, site: str) -> list[Path]:
        """Stop and remove whichever files of the site's watcher exist; the paths removed."""
        removed: list[Path] = []
        timer = self.files("systemd", site)[1]
        if timer.exists() and systemd_runs(self.root):
            self.systemctl(["disable", "--now", timer.name])
        for path in [*self.files("systemd", site), *self.files("cron", site)]:
            if path.exists():
                path.unlink()
                removed.append(path)
        if any(p.suffix == ".timer" for p in removed) and systemd_runs(self.root):
            self.systemctl(["daemon-reload"])
        return removed

    def timer_active(self, site: str) -> bool | None:
        """Whether systemd says the site's timer is active; None where systemd does not run."""
        if not systemd_runs(self.root):
            return None
        try:
            return self.systemctl(["is-active", f"{unit_name(site)}.timer"]).strip() == "active"
        except BackendError:  # is-active exits non-zero for an inactive unit
            return False


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # cron ignores names with a dot; systemd ignores unknown suffixes
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def service_unit(job: Job) -> str:
    environment = "\n".join(
        f"Environment={shlex.quote(f'{name}={value}')}".replace("%", "%%")
        for name, value in [("PATH", SERVICE_PATH), *job.environment]
    )
    return (
        f"# written by `provision watch install {job.site}`; removed by `provision watch remove {job.site}`\n"
        "[Unit]\n"
        f"Description=provision watch: scheduled verification of site {job.site}\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"User={job.user}\n"
        f"{environment}\n"
        f"ExecStart={shlex.join(job.command).replace('%', '%%')}\n"  # % starts a systemd specifier
    )


def timer_unit(job: Job) -> str:
    return (
        f"# written by `provision watch install {job.site}`; removed by `provision watch remove {job.site}`\n"
        "[Unit]\n"
        f"Description=provision watch: tick of site {job.site} every {job.interval}s\n"
        "\n"
        "[Timer]\n"
        "OnActiveSec=1s\n"
        f"OnUnitActiveSec={job.interval}s\n"
        "AccuracySec=1s\n"
        f"Unit={unit_name(job.site)}.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def cron_file(job: Job) -> str:
    """One line every minute; cron's own environment lines first (cron.d does not run a shell for those)."""
    environment = " ".join(f"{name}={shlex.quote(value)}" for name, value in job.environment)
    command = f"{environment} {shlex.join(job.command)} >>{shlex.quote(str(job.output_log))} 2>&1".strip()
    return (
        f"# written by `provision watch install {job.site}`; removed by `provision watch remove {job.site}`\n"
        "SHELL=/bin/sh\n"
        f"PATH={SERVICE_PATH}\n"
        f"* * * * * {job.user} {command.replace('%', CRON_PERCENT)}\n"
    )


def cron_daemon_pids(proc: Path = Path("/proc")) -> list[int]:
    """The processes named cron (or crond) on this machine, read from /proc."""
    pids = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name in CRON_DAEMONS:
            pids.append(int(entry.name))
    return sorted(pids)
