"""The access checks see every account that can log in, whatever its uid: classified from crafted passwd text."""

from __future__ import annotations

from helpers import EXAMPLE

from provisioner.conformance.login_accounts import (
    Declared,
    account_problems,
    classify,
    declared_for,
    login_accounts,
    names,
    parse_passwd,
)
from provisioner.site import policy
from provisioner.site.load import load_site
from provisioner.site.vocabulary import HOST_ROLES

# A production database host as Debian leaves it, the kit's accounts, and what someone slipped in.
PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
messagebus:x:100:107::/nonexistent:/bin/false
sshd:x:101:65534::/run/sshd:/usr/sbin/nologin
postgres:x:102:110:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash
provision:x:999:999:provisioner automation:/home/provision:/bin/bash
dave:x:1001:1001:Dave Dunn:/home/dave:/bin/bash
deploy:x:1002:1002:deploy identity:/home/deploy:/bin/bash
backdoor:x:998:998::/var/lib/backdoor:/bin/sh
quiet:x:997:997::/var/lib/quiet:
toor:x:0:0::/root:/usr/sbin/nologin
alice:x:1003:1003:Alice:/home/alice:/usr/bin/zsh
"""
PROD_DB = Declared(
    people=frozenset({"dave"}), deploy="deploy", automation="provision", services=frozenset({"postgres"})
)


def test_the_shell_decides_not_the_uid():
    assert names(login_accounts(PASSWD)) == [
        "alice", "backdoor", "dave", "deploy", "postgres", "provision", "quiet", "root",
    ]  # fmt: skip
    # an empty shell field is /bin/sh
    assert next(a for a in parse_passwd(PASSWD) if a.name == "quiet").shell == "/bin/sh"


def test_each_login_account_is_classified():
    assert classify(PASSWD, PROD_DB) == {
        "root": "root",
        "postgres": "service",
        "provision": "automation",
        "dave": "person",
        "deploy": "deploy",
        "backdoor": "undeclared",
        "quiet": "undeclared",
        "alice": "undeclared",
    }


def test_undeclared_accounts_and_a_second_root_are_named():
    assert account_problems(PASSWD, PROD_DB) == [
        "backdoor (uid 998, shell /bin/sh) can log in and is not declared",
        "quiet (uid 997, shell /bin/sh) can log in and is not declared",
        "alice (uid 1003, shell /usr/bin/zsh) can log in and is not declared",
        "toor has uid 0 (a second root), shell /usr/sbin/nologin",
    ]


def test_a_clean_host_has_no_problem():
    clean = "\n".join(
        line for line in PASSWD.splitlines() if line.split(":")[0] not in ("backdoor", "quiet", "toor", "alice")
    )
    assert account_problems(clean, PROD_DB) == []


def test_postgres_is_declared_only_where_the_database_is():
    app_host = Declared(people=frozenset({"dave"}), deploy="deploy", automation="provision", services=frozenset())
    assert "postgres (uid 102, shell /bin/bash) can log in and is not declared" in account_problems(PASSWD, app_host)
    assert HOST_ROLES["db"].service_accounts == ("postgres",)


def test_malformed_lines_are_skipped():
    assert parse_passwd("not a passwd line\nx:x:notanumber:0::/:/bin/sh\n\nok:x:5:5::/:/bin/bash\n") == [
        *parse_passwd("ok:x:5:5::/:/bin/bash")
    ]


def test_the_check_declares_the_sites_people_for_each_host():
    """What the ACC-1 check accepts on the example's production database host, from the site file."""
    site = load_site(EXAMPLE)
    host = next(h for h in site.model.hosts if "db" in h.roles and h.environment == "prod")
    declared = declared_for(site.model, host)
    env = site.model.environment(host.environment)
    assert declared.people == {a["name"] for a in policy.accounts_for(site.model, env)}
    assert "postgres" in declared.services and declared.automation == "provision"
    developers = {p.name for p in site.model.people if "developer" in p.roles}
    assert developers and not developers & declared.people
