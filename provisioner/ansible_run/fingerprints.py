"""Which hosts a `provision apply` may leave out of the playbook run: those whose inputs and live state are both
what they were after their last successful run.

Two fingerprints per host:

- the *input* fingerprint, computed on the controller: the host's groups and every variable the inventory gives it
  (its own, its groups', the site's), the content of roles/ and playbooks/, the content of the site's secrets
  folder, the extra vars and the connection settings;
- the *live* fingerprint, read from the host in one SSH connection (a Python script on stdin, run with sudo): for
  every file the roles wrote or removed in the last run (the paths come from that run's events) its type, mode,
  owner and content; the names in the /etc folders holding them; the account databases (passwd, group, shadow,
  gshadow), every account's authorized_keys and /etc/ssh/authorized_keys/*; sudoers and sudoers.d; the nft ruleset
  (without counters); whether each service the roles touched is enabled and active; the installed packages; the
  hostname and the forwarding switches; on database hosts the roles, memberships, databases, grants (schemas,
  relations, default privileges), pg_hba rules and the settings from the configuration files.

A host is left out only when a record of a successful run exists for it and both fingerprints match that record.
Anything else — no record, a changed input, a changed or unreadable live state, `--full` — puts it in the run.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from provisioner.ansible_run.runner import ansible_env
from provisioner.controller import collection_pins
from provisioner.paths import playbooks_dir, plugins_dir, roles_dir
from provisioner.workspace.files import write_atomic
from provisioner.workspace.site_state import AUTOMATION_USER, SiteState
from provisioner.workspace.ssh_sockets import verify_socket_name

RECORD_NAME = "host-fingerprints.json"
DECISION_NAME = "skip-decision.json"
FORMAT = 1

# modules whose `path`/`dest` is a file the roles manage (written, or kept absent)
FILE_MODULES = {
    f"ansible.builtin.{m}"
    for m in ("file", "copy", "template", "lineinfile", "blockinfile", "replace", "assemble", "ini_file")
} | {"community.general.ini_file"}
SERVICE_MODULES = {f"ansible.builtin.{m}" for m in ("service", "systemd", "systemd_service")}
EPHEMERAL_ROOTS = ("/tmp/", "/run/", "/proc/", "/dev/", "/sys/", "/var/tmp/")


@dataclass
class HostRecord:
    """What a host looked like right after its last successful run."""

    input: str
    live: dict[str, str]
    paths: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    database: bool = False


@dataclass
class Decision:
    """For each host of the inventory: run it, and why, or leave it out, and why."""

    run: dict[str, str] = field(default_factory=dict)
    skip: dict[str, str] = field(default_factory=dict)
    full: bool = False

    @property
    def everything(self) -> bool:
        return not self.skip

    def limit(self) -> str | None:
        """The --limit for the run: None when every host runs."""
        return None if self.everything else ",".join(sorted(self.run))

    def as_dict(self) -> dict[str, Any]:
        return {"full": self.full, "run": dict(sorted(self.run.items())), "skip": dict(sorted(self.skip.items()))}


# ---- inputs -------------------------------------------------------------------------------------------------------


def host_inputs(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each host's groups and the variables the inventory gives it, by group (`all` first)."""
    hosts: dict[str, dict[str, Any]] = {}

    def walk(name: str, group: dict[str, Any], ancestors: list[tuple[str, dict[str, Any]]]) -> None:
        chain = [*ancestors, (name, group.get("vars") or {})]
        for host, own in (group.get("hosts") or {}).items():
            entry = hosts.setdefault(host, {"groups": {}, "host": {}})
            entry["host"].update(own or {})
            for group_name, group_vars in chain:
                entry["groups"][group_name] = group_vars
        for child, child_group in (group.get("children") or {}).items():
            walk(child, child_group or {}, chain)

    walk("all", inventory.get("all") or {}, [])
    return hosts


def _counts(path: Path, folder: Path) -> bool:
    """A file of the roles or playbooks that a run may read: not a role's Molecule scenario, byte code or a hidden
    tool's cache."""
    parts = path.relative_to(folder).parts
    return not any(p in ("molecule", "__pycache__") or p.startswith(".") for p in parts) and path.suffix != ".pyc"


def _tree_digest(digest: Any, folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and _counts(path, folder):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())


def shared_input(folders: Iterable[Path], settings: dict[str, Any]) -> str:
    """The inputs every host shares: the roles' and playbooks' content, the extra vars and settings."""
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(f"folder {folder.name}\0".encode())
        _tree_digest(digest, folder)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


# secrets only the controller uses (the personal-data scanner's key, the log receiver's and authority's keys)
CONTROLLER_SECRETS = {"data-fingerprint-key", "log-receiver.key", "log-receiver.pem", "log-ca.key"}


def secrets_used(
    names: Iterable[str], host: str, env: str | None, hosts: Iterable[str], envs: Iterable[str]
) -> list[str]:
    """The secrets a host's play may read: every file of the site's secrets folder but the controller's own and
    those named for another host (`log-upload-<host>.key`) or another environment (`db-<role>-<env>`)."""
    others = [h for h in hosts if h != host]
    other_envs = [e for e in envs if e != env]
    return sorted(
        name
        for name in names
        if name not in CONTROLLER_SECRETS
        and not any(f"-{h}." in name or name.endswith(f"-{h}") for h in others)
        and not any(name.endswith(f"-{e}") for e in other_envs)
    )


def _secret_digests(secrets_dir: Path) -> dict[str, str]:
    if not secrets_dir.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(secrets_dir.iterdir()) if p.is_file()}


def site_input(state: SiteState, extravars: dict[str, Any]) -> str:
    """The shared input of a provision apply: this checkout's roles, playbooks and plugins (the collection
    provisioner.separation), the extra vars, the connection settings (but the controller's PATH), the ansible-core
    version and the installed versions of the pinned collections the roles call."""
    settings = {k: v for k, v in ansible_env(state).items() if k != "PATH"}
    root = collection_pins.collections_root()
    collections = {c.fqcn: collection_pins.installed_version(root, c) for c in collection_pins.PINNED}
    return shared_input(
        [roles_dir(), playbooks_dir(), plugins_dir()],
        {
            "extravars": extravars,
            "settings": settings,
            "ansible-core": version("ansible-core"),
            "collections": collections,
        },
    )


def _env_of(data: dict[str, Any]) -> str | None:
    return next((v["env_name"] for v in data["groups"].values() if isinstance(v, dict) and "env_name" in v), None)


def input_fingerprints(inventory: dict[str, Any], shared: str, secrets_dir: Path | None = None) -> dict[str, str]:
    """Per host: the shared input, its groups and variables, and the content of the secrets its play may read."""
    hosts = host_inputs(inventory)
    secrets = _secret_digests(secrets_dir) if secrets_dir is not None else {}
    envs = {e for e in (_env_of(d) for d in hosts.values()) if e}
    result = {}
    for host, data in hosts.items():
        used = {n: secrets[n] for n in secrets_used(secrets, host, _env_of(data), hosts, envs)}
        text = json.dumps({"vars": data, "secrets": used}, sort_keys=True, default=str)
        result[host] = hashlib.sha256((shared + text).encode()).hexdigest()
    return result


# ---- what the last run managed -------------------------------------------------------------------------------------


def _events(run_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted((run_dir / "artifacts").glob("*/job_events/*.json")):
        try:
            yield json.loads(path.read_text())
        except (OSError, ValueError):
            continue


def managed_by_run(run_dir: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Per host, the files and the services the run's tasks managed (from its job events)."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for event in _events(run_dir):
        if event.get("event") not in ("runner_on_ok", "runner_item_on_ok"):
            continue
        data = event.get("event_data") or {}
        host, action = data.get("host"), data.get("task_action")
        res = data.get("res") or {}
        args = (res.get("invocation") or {}).get("module_args") or {}
        paths, services = found.setdefault(str(host), (set(), set()))
        if action in FILE_MODULES:
            for value in (res.get("dest"), res.get("path"), args.get("dest"), args.get("path")):
                if isinstance(value, str) and value.startswith("/") and not value.startswith(EPHEMERAL_ROOTS):
                    paths.add(value.rstrip("/") or "/")
        elif action in SERVICE_MODULES:
            name = args.get("name") or res.get("name")
            if isinstance(name, str) and name:
                services.add(name)
    return found


# ---- the live state ------------------------------------------------------------------------------------------------

LIVE_SCRIPT = r"""
import hashlib, json, os, pwd, socket, stat, subprocess

def digest(data):
    return hashlib.sha256(data if isinstance(data, bytes) else json.dumps(data, sort_keys=True).encode()).hexdigest()

def command(argv, user=None):
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as error:
        return "error " + type(error).__name__
    return "%d %s" % (done.returncode, digest(done.stdout))

def entry(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    except OSError as error:
        return "error " + type(error).__name__
    head = "%s %d:%d" % (stat.filemode(st.st_mode), st.st_uid, st.st_gid)
    if stat.S_ISLNK(st.st_mode):
        return head + " -> " + os.readlink(path)
    if stat.S_ISREG(st.st_mode):
        try:
            with open(path, "rb") as handle:
                return head + " " + digest(handle.read())
        except OSError as error:
            return head + " error " + type(error).__name__
    return head

def listing(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError as error:
        return "error " + type(error).__name__

def folder_files(folder):
    names = listing(folder)
    if isinstance(names, str):
        return names
    return {name: entry(os.path.join(folder, name)) for name in names}

def main(params):
    live = {}
    for path in params["paths"]:
        live["file " + path] = digest(entry(path))
    folders = sorted({os.path.dirname(p) for p in params["paths"] if os.path.dirname(p).startswith("/etc/")})
    for folder in folders:
        live["names in " + folder] = digest(listing(folder))
    live["accounts"] = digest({p: entry(p) for p in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")})
    keys = {}
    for account in pwd.getpwall():
        keys[account.pw_name] = entry(os.path.join(account.pw_dir, ".ssh", "authorized_keys"))
    keys["/etc/ssh/authorized_keys"] = folder_files("/etc/ssh/authorized_keys")
    live["authorized keys"] = digest(keys)
    live["sudoers"] = digest({"/etc/sudoers": entry("/etc/sudoers"), "sudoers.d": folder_files("/etc/sudoers.d")})
    live["sshd"] = digest({"sshd_config": entry("/etc/ssh/sshd_config"),
                           "sshd_config.d": folder_files("/etc/ssh/sshd_config.d")})
    live["nft ruleset"] = command(["nft", "-s", "list", "ruleset"])
    for unit in params["services"]:
        live["service " + unit] = command(["systemctl", "is-enabled", unit]) + " " + command(
            ["systemctl", "is-active", unit])
    live["packages"] = command(["dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n"])
    live["hostname"] = digest(socket.gethostname())
    live["forwarding"] = digest({p: open(p).read() if os.path.exists(p) else "absent" for p in (
        "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")})
    if params["database"]:
        psql = ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1"]
        cluster = [
            "select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,"
            " rolbypassrls, rolconnlimit, rolpassword, rolvaliduntil from pg_authid order by 1",
            "select roleid::regrole, member::regrole, admin_option from pg_auth_members order by 1, 2",
            "select datname, datdba::regrole, datacl, datallowconn, datconnlimit from pg_database order by 1",
            "select line_number, type, database, user_name, address, netmask, auth_method, options, error"
            " from pg_hba_file_rules order by 1",
            "select name, setting from pg_settings where source = 'configuration file' or pending_restart order by 1",
        ]
        live["database cluster"] = command(psql + [a for q in cluster for a in ("-c", q)], user="postgres")
        per_database = [
            "select nspname, nspowner::regrole, nspacl from pg_namespace order by 1",
            "select c.oid::regclass::text, c.relowner::regrole, c.relacl from pg_class c join pg_namespace n"
            " on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema')"
            " and n.nspname not like 'pg_toast%' and c.relkind in ('r', 'v', 'm', 'S', 'f', 'p') order by 1",
            "select defaclrole::regrole, defaclnamespace, defaclobjtype, defaclacl from pg_default_acl"
            " order by 1, 2, 3",
        ]
        names = subprocess.run(["runuser", "-u", "postgres", "--"] + psql + ["-c",
                               "select datname from pg_database where datallowconn order by 1"],
                               capture_output=True, text=True, cwd="/").stdout.split()
        for name in names:
            live["database " + name] = command(psql + ["-d", name] + [a for q in per_database for a in ("-c", q)],
                                               user="postgres")
    print(json.dumps(live, sort_keys=True))
"""


def live_script(paths: Iterable[str], services: Iterable[str], database: bool) -> str:
    params = {"paths": sorted(set(paths)), "services": sorted(set(services)), "database": database}
    return LIVE_SCRIPT + f"\nmain(json.loads({json.dumps(json.dumps(params))}))\n"


def ssh_command(state: SiteState, address: str) -> list[str]:
    """Plain ssh as the automation account, through the same connection master the conformance checks use."""
    return [
        "ssh",
        "-i", str(state.controller_identity()),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "ConnectTimeout=5",
        "-o", "ControlMaster=auto", "-o", "ControlPersist=120s",
        "-o", f"ControlPath={state.ssh_sockets() / verify_socket_name(AUTOMATION_USER, address)}",
        "--", f"{AUTOMATION_USER}@{address}", "sudo -n /usr/bin/python3 -",
    ]  # fmt: skip


def read_live(state: SiteState, address: str, script: str) -> dict[str, str] | str:
    """The host's live fingerprint, or why it could not be read."""
    try:
        done = subprocess.run(ssh_command(state, address), input=script, capture_output=True, text=True, timeout=90)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"live state unreadable ({type(error).__name__})"
    if done.returncode != 0:
        return f"live state unreadable (exit {done.returncode})"
    try:
        live = json.loads(done.stdout)
    except ValueError:
        return "live state unreadable (no answer)"
    if not isinstance(live, dict):
        return "live state unreadable (no answer)"
    return {str(k): str(v) for k, v in live.items()}


def read_live_all(
    state: SiteState, targets: dict[str, tuple[str, str]], workers: int = 8
) -> dict[str, dict[str, str] | str]:
    """targets: host → (address, script); one connection per host, several hosts at a time."""
    if not targets:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(targets))) as pool:
        futures = {host: pool.submit(read_live, state, address, script) for host, (address, script) in targets.items()}
        return {host: future.result() for host, future in futures.items()}


# ---- the decision --------------------------------------------------------------------------------------------------


def live_difference(recorded: dict[str, str], live: dict[str, str]) -> list[str]:
    """The names of the live parts that differ (added, removed or changed)."""
    return sorted(k for k in set(recorded) | set(live) if recorded.get(k) != live.get(k))


def decide(
    hosts: Iterable[str],
    inputs: dict[str, str],
    records: dict[str, HostRecord],
    live: dict[str, dict[str, str] | str],
    full: bool = False,
    forced: dict[str, str] | None = None,
) -> Decision:
    """Which hosts run the playbook and why; `forced` names hosts that must run whatever their fingerprints say."""
    decision = Decision(full=full)
    for host in sorted(hosts):
        record = records.get(host)
        now = live.get(host)
        if full:
            decision.run[host] = "--full"
        elif forced and host in forced:
            decision.run[host] = forced[host]
        elif record is None:
            decision.run[host] = "no record of a successful run"
        elif record.input != inputs.get(host):
            decision.run[host] = "inputs changed (inventory vars, roles, playbooks, secrets or settings)"
        elif now is None:
            decision.run[host] = "live state not read"
        elif isinstance(now, str):
            decision.run[host] = now
        elif differing := live_difference(record.live, now):
            shown = ", ".join(differing[:5]) + (f" and {len(differing) - 5} more" if len(differing) > 5 else "")
            decision.run[host] = f"live state changed: {shown}"
        else:
            decision.skip[host] = "inputs and live state unchanged since its last successful run"
    return decision


# ---- the record ----------------------------------------------------------------------------------------------------


def record_path(state: SiteState) -> Path:
    return state.root / RECORD_NAME


def load_records(state: SiteState) -> dict[str, HostRecord]:
    """The records of the last successful runs; an unreadable or foreign file counts as no record at all."""
    try:
        data = json.loads(record_path(state).read_text())
        if data.get("format") != FORMAT:
            return {}
        return {host: HostRecord(**entry) for host, entry in data["hosts"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save_records(state: SiteState, records: dict[str, HostRecord]) -> None:
    data = {"format": FORMAT, "hosts": {h: asdict(r) for h, r in sorted(records.items())}}
    write_atomic(record_path(state), json.dumps(data, indent=1, sort_keys=True) + "\n")


def forget(state: SiteState, hosts: Iterable[str] | None = None) -> None:
    """Drop the records of `hosts` (all of them with None): before a run that may change them, whose end may never
    come (an interruption), and for machines destroyed."""
    if hosts is None:
        record_path(state).unlink(missing_ok=True)
        return
    records = load_records(state)
    dropped = [h for h in hosts if records.pop(h, None) is not None]  # every host: no short-circuit
    if dropped:
        save_records(state, records)


def write_decision(run_dir: Path, decision: Decision) -> Path:
    path = run_dir / DECISION_NAME
    path.write_text(json.dumps(decision.as_dict(), indent=1) + "\n")
    return path


# ---- before and after a run ----------------------------------------------------------------------------------------


def _address(data: dict[str, Any]) -> str:
    return str(data["host"].get("ansible_host") or "")


def _database(data: dict[str, Any]) -> bool:
    return DATABASE_GROUP in data["groups"]


DATABASE_GROUP = "role_db"


def choose_hosts(
    state: SiteState,
    inventory: dict[str, Any],
    shared: str,
    full: bool = False,
    forced: dict[str, str] | None = None,
) -> tuple[Decision, dict[str, str]]:
    """The decision for this apply and the hosts' input fingerprints (to record after the run). The live state is
    read only from hosts whose inputs are unchanged: any other host runs anyway."""
    hosts = host_inputs(inventory)
    inputs = input_fingerprints(inventory, shared, state.secrets_dir)
    records = {} if full else load_records(state)
    targets = {
        host: (_address(data), live_script(records[host].paths, records[host].services, records[host].database))
        for host, data in hosts.items()
        if host in records and records[host].input == inputs[host] and not (forced and host in forced)
    }
    live = read_live_all(state, targets)
    return decide(hosts, inputs, records, live, full=full, forced=forced), inputs


def remember(
    state: SiteState,
    inventory: dict[str, Any],
    inputs: dict[str, str],
    decision: Decision,
    run_dir: Path,
    failed_hosts: set[str],
) -> dict[str, str]:
    """After a run: record each host that ran and succeeded (its inputs, what it managed, its live state now); drop
    the record of each host that ran and failed, so it runs next time. Returns host → why it was not recorded."""
    hosts = host_inputs(inventory)
    records = load_records(state)
    managed = managed_by_run(run_dir)
    not_recorded: dict[str, str] = {}
    targets: dict[str, tuple[str, str]] = {}
    for host in decision.run:
        if host in failed_hosts or host not in hosts:
            records.pop(host, None)
            not_recorded[host] = "the run failed on it"
            continue
        paths, services = managed.get(host, (set(), set()))
        targets[host] = (_address(hosts[host]), live_script(paths, services, _database(hosts[host])))
    for host, live in read_live_all(state, targets).items():
        if isinstance(live, str):
            records.pop(host, None)
            not_recorded[host] = live
            continue
        paths, services = managed.get(host, (set(), set()))
        records[host] = HostRecord(
            input=inputs[host],
            live=live,
            paths=sorted(paths),
            services=sorted(services),
            database=_database(hosts[host]),
        )
    for host in list(records):
        if host not in hosts:
            del records[host]
    save_records(state, records)
    return not_recorded
