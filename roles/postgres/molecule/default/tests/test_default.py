"""postgres (ACC-3) on the scenario's lab: real connections with real passwords from the site's secrets store.
The application role connects from its app host; developers connect in development and are refused by the
production database, which holds no developer role at all."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parents[1] / "molecule" / "shared"))
from scenario import address, hostvars, machine

testinfra_hosts = ["dev-db1", "prod-db1"]


def secret(user: str, env: str) -> str:
    secrets = Path(hostvars()["dev-db1"]["provisioner_secrets_dir"])
    return (secrets / f"db-{user}-{env}").read_text().strip()


def psql(source: str, target: str, user: str, password: str, sql: str = "SELECT current_user"):
    """A real client connection from inside `source` to the database on `target`."""
    dsn = f"host={address(target)} port=5432 dbname=app user={user} connect_timeout=5 sslmode=disable"
    client = f"psql -X -A -t -q -v ON_ERROR_STOP=1 {shlex.quote(dsn)} -c {shlex.quote(sql)}"
    return machine(source).run(f"PGPASSWORD={shlex.quote(password)} {client}")


def query(target: str, sql: str) -> str:
    result = machine(target).run(f"cd / && sudo -u postgres psql -X -A -t -d postgres -c {shlex.quote(sql)}")
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def test_cluster_enabled_running_and_listening(host):
    assert host.service("postgresql@15-main").is_running
    assert host.service("postgresql").is_enabled
    assert host.socket("tcp://0.0.0.0:5432").is_listening


def test_passwords_stored_as_scram(host):
    name = host.backend.get_hostname()
    assert query(name, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'app'") == "t"


@pytest.mark.parametrize(("app", "db", "env"), [("dev-app1", "dev-db1", "dev"), ("prod-app1", "prod-db1", "prod")])
def test_application_connects_from_its_app_host(app, db, env):
    result = psql(app, db, "app", secret("app", env), "CREATE TABLE IF NOT EXISTS orders (id int); SELECT current_user")
    assert result.rc == 0 and result.stdout.strip() == "app", result.stderr


def test_developer_reads_and_writes_in_development():
    result = psql(
        "dev-app1",
        "dev-db1",
        "alice",
        secret("alice", "dev"),
        "INSERT INTO orders VALUES (1); SELECT count(*) > 0 FROM orders",
    )
    assert result.rc == 0 and result.stdout.strip() == "t", result.stderr


def test_developer_refused_by_the_production_database():
    """ACC-3: alice, from inside production with her development password: no role, no pg_hba entry."""
    result = psql("prod-app1", "prod-db1", "alice", secret("alice", "dev"))
    assert result.rc != 0
    assert "pg_hba.conf rejects connection for host" in result.stderr and 'user "alice"' in result.stderr, result.stderr


def test_production_has_no_developer_role():
    assert (
        query("prod-db1", "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN ('alice', 'bob', 'leftover')")
        == ""
    )
    assert (
        query(
            "dev-db1",
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('alice', 'bob')",
        )
        == "alice,bob"
    )


def test_application_role_only_from_the_app_hosts():
    # the database host itself is not an app host: its own address is refused for the app role
    result = psql("prod-db1", "prod-db1", "app", secret("app", "prod"))
    assert result.rc != 0 and "pg_hba.conf rejects connection" in result.stderr, result.stderr


def test_development_password_useless_in_production():
    result = psql("prod-app1", "prod-db1", "app", secret("app", "dev"))
    assert result.rc != 0 and 'password authentication failed for user "app"' in result.stderr, result.stderr


def test_administrators_by_local_peer_authentication_only():
    assert query("prod-db1", "SELECT rolcanlogin AND rolpassword IS NULL FROM pg_authid WHERE rolname = 'dave'") == "t"
    assert query("prod-db1", "SELECT pg_has_role('dave', 'pg_write_all_data', 'member')") == "t"
    hba = query(
        "prod-db1",
        "SELECT string_agg(type || ' ' || user_name::text || ' ' || auth_method, '; ') "
        "FROM pg_hba_file_rules WHERE 'dave' = ANY(user_name)",
    )
    assert hba == "local {dave} peer"


def test_the_controllers_reader_reads_only_outside_production_and_only_from_the_probe_address():
    """DATA-1/2's reader: a member of pg_read_all_data in development, admitted from verify's probe address alone
    (an app host, on the same segment, is refused); production has no such role."""
    reader = hostvars()["dev-db1"]["env_data_reader"]
    probe = hostvars()["dev-db1"]["env_probe_address"]
    assert reader == "provisioner_reader" and hostvars()["dev-db1"]["env_data_read"] is True
    assert hostvars()["prod-db1"]["env_data_read"] is False
    assert query("dev-db1", f"SELECT pg_has_role('{reader}', 'pg_read_all_data', 'member')") == "t"
    assert query("dev-db1", f"SELECT pg_has_role('{reader}', 'pg_write_all_data', 'member')") == "f"
    hba = query(
        "dev-db1",
        "SELECT string_agg(type || ' ' || address || ' ' || netmask || ' ' || auth_method, '; ') "
        f"FROM pg_hba_file_rules WHERE '{reader}' = ANY(user_name)",
    )
    assert hba == f"host {probe} 255.255.255.255 scram-sha-256"
    refused = psql("dev-app1", "dev-db1", reader, secret(reader, "dev"))
    assert refused.rc != 0 and "pg_hba.conf rejects connection" in refused.stderr, refused.stderr
    assert query("prod-db1", f"SELECT count(*) FROM pg_roles WHERE rolname = '{reader}'") == "0"
