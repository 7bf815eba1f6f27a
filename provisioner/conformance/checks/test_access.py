"""ACC-1..5: accounts, keys, the production database, sudo, sshd — read and attempted."""

from __future__ import annotations

import json
import shlex
from concurrent.futures import ThreadPoolExecutor

import pytest

from provisioner.conformance import database_login, login_accounts, reachability, sshd_keys
from provisioner.conformance.scope import NOT_ATTEMPTED
from provisioner.remote import pg_login
from provisioner.site import policy
from provisioner.workspace.secrets import database_password_name


def _developers_and_testers(lab):
    return lab.people("developer", "tester")


def _login_accounts(lab, host) -> list[str]:
    """Every account on `host` whose shell lets it log in, whatever its uid."""
    passwd = lab.remote.host(str(host.address)).check_output("getent passwd")
    return login_accounts.names(login_accounts.login_accounts(passwd))


@pytest.mark.control("ACC-1")
def test_no_developer_or_tester_account_on_production(lab, evidence, prod_host_name):
    host = lab.host(prod_host_name)
    declared = login_accounts.declared_for(lab.model, host)
    remote = lab.remote.host(str(host.address))
    passwd = remote.check_output("getent passwd")
    kinds = login_accounts.classify(passwd, declared)
    users = set(kinds)
    forbidden = {p.name for p in _developers_and_testers(lab) if p.name not in declared.people}
    allowed = sorted({"root", declared.automation, *declared.people, *declared.services} | {declared.deploy} - {None})
    evidence.expect(f"login accounts (any uid, shell not nologin/false/sync) only for {', '.join(allowed)}")
    evidence.observe("login accounts: " + ", ".join(f"{name} ({kind})" for name, kind in sorted(kinds.items())))
    assert not users & forbidden, f"developer/tester accounts on {prod_host_name}: {sorted(users & forbidden)}"
    problems = login_accounts.account_problems(passwd, declared)
    assert not problems, f"undeclared accounts on {prod_host_name}: " + "; ".join(problems)
    # where sshd reads keys (the root-owned folder), and where it read them before the accounts role moved them
    keys = lab.remote.run_as_root(
        str(host.address),
        f"sh -c 'cat {sshd_keys.KEYS_DIR}/* /root/.ssh/authorized_keys* /home/*/.ssh/authorized_keys* 2>/dev/null; "
        "true'",
    ).stdout
    planted = [p.name for p in _developers_and_testers(lab) if p.ssh_key.split()[1] in keys]
    evidence.note(f"authorized keys scanned for {len(_developers_and_testers(lab))} developer/tester keys")
    assert not planted, f"keys of {', '.join(planted)} are authorised on {prod_host_name}"
    allow_groups = remote.check_output('sudo -n sshd -T | awk \'$1=="allowgroups" {$1=""; print}\'').split()
    evidence.note(f"sshd AllowGroups: {' '.join(allow_groups)}")
    assert allow_groups, f"sshd on {prod_host_name} has no AllowGroups"


@pytest.mark.control("ACC-2")
@pytest.mark.waits(1.0)
def test_developer_key_refused_by_production_and_accepted_in_development(lab, evidence, developer_name):
    key = lab.key_of(developer_name)
    if key is None:
        pytest.skip(f"{NOT_ATTEMPTED}no private key for {developer_name} to attempt with (--keys)")
    dev_hosts = lab.hosts("development")
    evidence.expect(f"{developer_name}'s key logs in on a development host and is refused by every production host")
    control = lab.remote.attempt_ssh(key, developer_name, str(dev_hosts[0].address), "id -un")
    evidence.note(f"positive control {developer_name}@{dev_hosts[0].name}: rc={control.rc} {control.stdout.strip()}")
    # every attempt is an evidence row with `ok`: a waiver covers a failure only by the rows that failed
    evidence.row(host=dev_hosts[0].name, user=developer_name, expected="accepted",
                 refused="Permission denied" in control.stderr, ok=control.ok,
                 stderr=control.stderr.strip()[-200:])  # fmt: skip
    assert control.ok, f"the key of {developer_name} does not work on {dev_hosts[0].name}: {control.stderr.strip()}"
    # the developer's own name, root, and every account that exists there: wherever the key might be planted
    targets = []
    for host in lab.hosts("production"):
        local = set(_login_accounts(lab, host))
        targets += [(host, user) for user in sorted(local | {developer_name, "root", "provision"})]
    with ThreadPoolExecutor(max_workers=8) as pool:
        attempts = list(pool.map(lambda t: lab.remote.attempt_ssh(key, t[1], str(t[0].address)), targets))
    accepted = []
    for (host, user), attempt in zip(targets, attempts, strict=True):
        refused = "Permission denied" in attempt.stderr
        evidence.row(host=host.name, user=user, expected="refused", refused=refused, ok=refused and not attempt.ok,
                     stderr=attempt.stderr.strip()[-200:])  # fmt: skip
        if attempt.ok:
            accepted.append(f"{user}@{host.name}")
        else:
            assert refused, f"{user}@{host.name} failed for another reason: {attempt.stderr.strip()}"
    evidence.observe("refused everywhere" if not accepted else f"accepted as {', '.join(accepted)}")
    assert not accepted, f"{developer_name}'s key logs in as {', '.join(accepted)}"


def _db_hosts(lab, tier):
    return [h for h in lab.hosts(tier) if "db" in h.roles]


def _psql_attempt(lab, source, db_host, user, password):
    """The fallback: psql over SSH on a development host, whose root (a developer) decides what it prints."""
    command = (
        "read -r PGPASSWORD; export PGPASSWORD; "
        f"PGCONNECT_TIMEOUT=5 psql -X -w -At -h {db_host.address} -U {user} -d app -c 'select current_user'"
    )
    return lab.remote.attempt_ssh(lab.state.controller_key, "provision", str(source.address), command, stdin=password)


PSQL_REFUSALS = ("No route to host", "pg_hba.conf rejects", "password authentication failed", "timeout expired")


def _probe_login(point, db_host, user, password):
    """A real PostgreSQL login from the controller's probe point (provisioner.remote.pg_login); the password on
    the script's stdin."""
    request = pg_login.request(str(db_host.address), database_login.DB_PORT, user, database_login.DATABASE)
    result = point.python(pg_login.script(), request, input_text=password + "\n", timeout=180)
    assert result.returncode == 0, f"the login attempt at the probe failed: {result.stderr.strip()[-500:]}"
    return pg_login.parse(json.loads(result.stdout))


@pytest.mark.control("ACC-3")
def test_developer_cannot_reach_the_production_database(lab, evidence, developer_name):
    """From the controller's probe on the development segment (no host a developer is root on decides what the
    attempts report): the developer logs in to the development database (the positive control), and every
    production database is refused for the right reason: the gateway's counted reject, or the server's refusal."""
    dev_env = next(e for e in lab.model.environments if e.tier == "development")
    secret = lab.state.secrets_dir / database_password_name(developer_name, dev_env.name)
    if not secret.is_file():
        pytest.skip(f"{developer_name} has no database role in {dev_env.name}")
    password = secret.read_text().strip()
    dev_dbs = _db_hosts(lab, "development")
    if not dev_dbs:
        pytest.skip(f"{dev_env.name} holds no database to run the positive control against")
    dev_db = dev_dbs[0]
    gateway_leg = str(dev_env.segment.gateway)
    evidence.expect(
        f"{developer_name} logs in to the {dev_env.name} database (the positive control) and not to production's: "
        f"the gateway refuses the connection ({gateway_leg}: ICMP administratively prohibited, counted by its deny "
        "counter for the pair) or the production server refuses the login (SQLSTATE 28000 pg_hba.conf / 28P01)"
    )
    point = lab.backend.probe_point(dev_env.name)
    if point is None:
        _from_a_development_host(lab, evidence, dev_env, dev_db, developer_name, password)
        return
    source = f"probe@{dev_env.name}"
    evidence.note(f"{source}: the controller's probe at {point.address} on {point.bridge}")
    with point.attached():
        control_here, why = database_login.control_from_probe(lab.model, dev_env, dev_db, developer_name)
        if control_here:
            evidence.note(f"positive control from the probe: {why}")
            control = _probe_login(point, dev_db, developer_name, password)
            verdict = database_login.judge_control(control, developer_name, gateway_leg)
            evidence.row(source=source, host=dev_db.name, expected="logged in", observed=verdict.kind,
                         detail=verdict.detail, sqlstate=control.sqlstate, icmp=control.icmp, tries=control.tries,
                         ok=verdict.ok)  # fmt: skip
            assert verdict.ok, f"{developer_name} into {dev_db.name}: {verdict.detail}"
        else:
            host = lab.model.hosts_in(dev_env.name)[0]
            evidence.note(f"positive control over SSH from host {host.name}, not from the probe: {why}")
            _psql_control(lab, evidence, host, dev_db, developer_name, password)
        before = lab.gateway_counters()
        attempts = [(db, _probe_login(point, db, developer_name, password)) for db in _db_hosts(lab, "production")]
        after = lab.gateway_counters()
    counted = None if before is None or after is None else reachability.counter_rise(before, after)
    if counted is None:
        evidence.note("the gateway's deny counters could not be read over SSH: no gateway reject is corroborated")
    pairs = [(result, reachability.deny_counter(dev_env.name, db.environment)) for db, result in attempts]
    verdicts = database_login.judge_production(pairs, gateway_leg, counted)
    wrong = []
    for (db, result), verdict in zip(attempts, verdicts, strict=True):
        evidence.row(source=source, host=db.name, expected="refused", observed=verdict.kind,
                     detail=verdict.detail, sqlstate=result.sqlstate, icmp=result.icmp, tries=result.tries,
                     ok=verdict.ok)  # fmt: skip
        if not verdict.ok:
            wrong.append(f"{db.name}: {verdict.detail}")
    evidence.observe("; ".join(wrong) or "refused by every production database, each for the right reason")
    assert not wrong, f"{developer_name} from the {dev_env.name} segment: " + "; ".join(wrong)


def _psql_control(lab, evidence, host, dev_db, developer_name, password):
    control = _psql_attempt(lab, host, dev_db, developer_name, password)
    ok = control.ok and control.stdout.strip() == developer_name
    evidence.row(source=host.name, host=dev_db.name, expected="logged in", observed=control.stdout.strip(),
                 detail=control.stderr.strip()[-300:], rc=control.rc, ok=ok)  # fmt: skip
    assert ok, f"the control failed: {developer_name} into {dev_db.name} from {host.name}: {control.stderr.strip()}"


def _from_a_development_host(lab, evidence, dev_env, dev_db, developer_name, password):
    """The fallback where the backend gives no probe point: psql over SSH on the segment's first host."""
    source = lab.model.hosts_in(dev_env.name)[0]
    evidence.note(
        f"attempts from host {source.name} over SSH (the {lab.model.backend.type} backend gives no probe point): "
        "a developer is root there and could decide what psql prints"
    )
    _psql_control(lab, evidence, source, dev_db, developer_name, password)
    for prod_db in _db_hosts(lab, "production"):
        attempt = _psql_attempt(lab, source, prod_db, developer_name, password)
        refused = not attempt.ok and any(r in attempt.stderr for r in PSQL_REFUSALS)
        evidence.row(source=source.name, host=prod_db.name, expected="refused", observed=f"rc={attempt.rc}",
                     detail=attempt.stderr.strip()[-300:], rc=attempt.rc, ok=refused)  # fmt: skip
        assert not attempt.ok, f"{developer_name} logged in to the production database on {prod_db.name}"
        assert refused, f"failed for an unexpected reason: {attempt.stderr.strip()}"
    evidence.observe("refused by every production database")


@pytest.mark.control("ACC-3")
def test_no_developer_role_in_the_production_database(lab, evidence, prod_host_name):
    host = lab.host(prod_host_name)
    if "db" not in host.roles:
        pytest.skip(f"{prod_host_name} holds no database")
    roles = lab.remote.run_as_root(
        str(host.address), "-u postgres psql -X -At -c 'select rolname from pg_roles where rolcanlogin'"
    )
    assert roles.rc == 0, roles.stderr
    logins = set(roles.stdout.split())
    forbidden = {p.name for p in _developers_and_testers(lab)} & logins
    evidence.expect("no developer or tester login role")
    evidence.observe(f"login roles: {', '.join(sorted(logins))}")
    assert not forbidden, f"developer/tester database roles on {prod_host_name}: {sorted(forbidden)}"


@pytest.mark.control("ACC-4")
def test_production_sudo_only_for_administrators(lab, evidence, prod_host_name):
    host = lab.host(prod_host_name)
    env = lab.model.environment(host.environment)
    admins = {a["name"] for a in policy.accounts_for(lab.model, env) if a["level"] == "sudo"} | {"root", "provision"}
    deploy = lab.model.deploy.name if lab.model.deploy else None
    evidence.expect(
        f"full sudo only for {', '.join(sorted(admins))}; {deploy or 'no deploy identity'} only the deploy command"
    )
    wrong = []
    for user in _login_accounts(lab, host):  # every account that can log in, whatever its uid
        rules = lab.remote.run_as_root(str(host.address), f"sudo -l -U {shlex.quote(user)}").stdout
        full = "(ALL" in rules and " ALL\n" in rules + "\n"
        evidence.row(user=user, full_sudo=full, rules=rules.strip().splitlines()[-3:])
        if full and user not in admins:
            wrong.append(f"{user} has full sudo")
        if user == deploy:
            commands = [line.strip() for line in rules.splitlines() if line.startswith("    (")]
            if any("provision-deploy" not in c for c in commands) or not commands:
                wrong.append(f"{user} may run more than the deploy command: {commands}")
    evidence.observe("; ".join(wrong) or "as declared")
    assert not wrong, "; ".join(wrong)


@pytest.mark.control("ACC-4")
@pytest.mark.waits(1.0)
def test_developer_sudo_refused_in_test_and_allowed_in_development(lab, evidence, developer_name):
    key = lab.key_of(developer_name)
    if key is None:
        pytest.skip(f"{NOT_ATTEMPTED}no private key for {developer_name} to attempt with (--keys)")
    dev_host = lab.hosts("development")[0]
    test_hosts = lab.hosts("test")
    if not test_hosts:
        pytest.skip("no test environment")
    control = lab.remote.attempt_ssh(key, developer_name, str(dev_host.address), "sudo -n true")
    evidence.note(f"positive control: sudo on {dev_host.name} rc={control.rc}")
    assert control.ok, f"{developer_name} cannot sudo in development: {control.stderr.strip()}"
    attempt = lab.remote.attempt_ssh(key, developer_name, str(test_hosts[0].address), "sudo -n true")
    evidence.expect(f"{developer_name} logs in on {test_hosts[0].name} but sudo is refused")
    evidence.observe(f"rc={attempt.rc} {attempt.stderr.strip()[-200:]}")
    assert not attempt.ok, f"{developer_name} may sudo on {test_hosts[0].name}"
    assert "sudo" in attempt.stderr and "Permission denied" not in attempt.stderr, (
        f"refused for the wrong reason (no login?): {attempt.stderr.strip()}"
    )


@pytest.mark.control("ACC-5")
def test_no_root_login_and_no_password_authentication(lab, evidence, host_name):
    host = lab.host(host_name)
    effective = dict(
        line.split(" ", 1)
        for line in lab.remote.run_as_root(str(host.address), "sshd -T").stdout.splitlines()
        if " " in line
    )
    wanted = {"permitrootlogin": "no", "passwordauthentication": "no", "kbdinteractiveauthentication": "no"}
    observed = {k: effective.get(k, "?") for k in wanted}
    evidence.expect(", ".join(f"{k} {v}" for k, v in wanted.items()))
    evidence.observe(", ".join(f"{k} {v}" for k, v in observed.items()))
    assert observed == wanted, f"sshd -T on {host_name}: {observed}"


@pytest.mark.control("ACC-5")
def test_keys_only_from_root_owned_files(lab, evidence, host_name):
    """sshd reads keys only from /etc/ssh/authorized_keys/<user> (not ~/.ssh/authorized_keys or authorized_keys2),
    and every file there is root's and writable by root alone: no one authorises a key for themselves."""
    address = str(lab.host(host_name).address)
    sshd = lab.remote.run_as_root(address, "sshd -T")
    assert sshd.rc == 0, f"sshd -T on {host_name}: {sshd.stderr.strip()}"
    listing = lab.remote.run_as_root(address, sshd_keys.listing_command()).stdout
    evidence.expect(f"authorizedkeysfile {sshd_keys.KEYS_FILE} only, no keys command; files root-owned, not writable")
    files = " ".join(sshd_keys.sshd_values(sshd.stdout, "authorizedkeysfile"))
    commands = " ".join(sshd_keys.sshd_values(sshd.stdout, "authorizedkeyscommand"))
    evidence.observe(f"authorizedkeysfile {files}; authorizedkeyscommand {commands or '?'}")
    evidence.note(listing.strip())
    problems = sshd_keys.key_source_problems(sshd.stdout) + sshd_keys.key_file_problems(listing)
    assert not problems, f"{host_name}: " + "; ".join(problems)
