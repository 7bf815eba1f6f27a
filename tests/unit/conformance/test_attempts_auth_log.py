"""Refused SSH logins and sudo attempts read from a production host's journal (issue 21, item 2): what is not a
refusal first, then one refusal per connection or invocation, then who and from where."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from attempt_logs import (
    accepted,
    entry,
    invalid_user,
    pam_failure,
    refused_key,
    sudo_not_in_sudoers,
    sudo_ran,
)
from helpers import DEMO_KEYS, example_with_access_networks

from provisioner.conformance.attempts.auth_log import Attribution, by_person, fingerprint, refusals
from provisioner.site.model import Site

T0 = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)
CONTROLLER = "10.90.0.1"
DEV_HOST = "10.90.10.11"
OFFICE_DESK = "10.90.50.7"
STRANGER_KEY = "SHA256:q1nD7P8yX2Zb3C4d5E6f7G8h9I0jK1lM2nO3pQ4rS5t"


@pytest.fixture(scope="module")
def site() -> Site:
    return Site.model_validate(example_with_access_networks())


@pytest.fixture(scope="module")
def who(site) -> Attribution:
    return Attribution.of(site)


def key_of(site: Site, person: str) -> str:
    return fingerprint(next(p.ssh_key for p in site.people if p.name == person))


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# ---- what is not a refusal ---------------------------------------------------------------------------------
def test_a_login_that_offered_a_wrong_key_before_the_right_one_is_no_refusal(site, who):
    journal = [
        entry(at(0), 700, f"Failed publickey for dave from {CONTROLLER} port 50000 ssh2: ED25519 {STRANGER_KEY}"),
        *accepted(at(1), 700, "dave", CONTROLLER, key_of(site, "dave")),
    ]
    assert refusals("prod-app1", journal, who) == []


def test_verify_s_own_traffic_and_port_probes_are_no_refusal(site, who):
    """The automation account's logins, a bare TCP connection to port 22 (a reachability probe) and a client that
    disconnects before naming an account."""
    journal = [
        *accepted(at(0), 701, "provision", CONTROLLER, STRANGER_KEY),
        entry(at(1), 702, f"Connection closed by {DEV_HOST} port 51000 [preauth]"),
        entry(at(2), 703, f"Received disconnect from {DEV_HOST} port 51001:11: Bye Bye [preauth]"),
        entry(at(3), 703, f"Disconnected from {DEV_HOST} port 51001 [preauth]"),
        entry(at(4), 704, f"Connection reset by {DEV_HOST} port 51002 [preauth]"),
    ]
    assert refusals("prod-app1", journal, who) == []


def test_a_sudo_command_that_ran_is_no_refusal_even_after_a_mistyped_password(who):
    journal = [
        *sudo_ran(at(0), 800, "dave"),
        pam_failure(at(10), 801, "dave"),
        *sudo_ran(at(15), 801, "dave", "/usr/bin/systemctl restart nginx"),
    ]
    assert refusals("prod-app1", journal, who) == []


def test_lines_another_program_writes_under_sshd_s_or_sudo_s_name_are_not_counted(who):
    """`logger -t sshd ...` by anyone on the host: the journal's own record of the process says logger."""
    forged = [
        {**entry(at(0), 900, f"Invalid user mallory from {DEV_HOST} port 4000"), "_COMM": "logger"},
        {**entry(at(1), 901, "mallory : user NOT in sudoers ; TTY=pts/0 ; USER=root ; COMMAND=/bin/sh",
                 program="sudo"), "_COMM": "logger"},
    ]  # fmt: skip
    assert refusals("prod-app1", forged, who) == []


def test_entries_without_a_time_or_a_message_are_skipped(who):
    broken = entry(at(0), 902, f"Invalid user mallory from {DEV_HOST} port 4000")
    no_time = {k: v for k, v in broken.items() if k != "__REALTIME_TIMESTAMP"}
    no_message = {k: v for k, v in broken.items() if k != "MESSAGE"}
    assert refusals("prod-app1", [no_time, no_message], who) == []


# ---- one refusal per connection or invocation ----------------------------------------------------------------
def test_a_refused_key_login_counts_once_with_the_key_that_was_offered(site, who):
    found = refusals("prod-app1", refused_key(at(0), 1000, "alice", CONTROLLER, key_of(site, "alice")), who)
    assert len(found) == 1
    refusal = found[0].as_dict()
    assert refusal == {
        "time": "2026-12-05T10:00:00+00:00", "host": "prod-app1", "what": "ssh", "user": "alice", "person": "alice",
        "source": CONTROLLER, "from_env": "mgmt", "key": key_of(site, "alice"),
        "line": f"Failed publickey for alice from {CONTROLLER} port 40112 ssh2: ED25519 {key_of(site, 'alice')}",
    }  # fmt: skip


def test_an_invalid_user_counts_once(site, who):
    found = refusals("prod-app1", invalid_user(at(0), 1001, "alice", OFFICE_DESK, key_of(site, "alice")), who)
    assert [(r.user, r.person, r.source, r.from_env) for r in found] == [("alice", "alice", OFFICE_DESK, "office")]
    assert found[0].line == f"Invalid user alice from {OFFICE_DESK} port 40113"


def test_two_connections_count_twice_and_a_reused_pid_much_later_is_another_connection(site, who):
    key = key_of(site, "bob")
    journal = refused_key(at(0), 1002, "bob", DEV_HOST, key) + refused_key(at(5), 1003, "bob", DEV_HOST, key)
    journal += refused_key(at(3600), 1002, "bob", DEV_HOST, key)
    assert [r.time for r in refusals("prod-app1", journal, who)] == [at(0), at(5), at(3600)]


@pytest.mark.parametrize(
    "message",
    [
        f"User alice from {OFFICE_DESK} not allowed because not listed in AllowUsers",
        f"User alice from {OFFICE_DESK} not allowed because none of user's groups are listed in AllowGroups",
        "User alice not allowed because account is locked",
        f"Connection closed by authenticating user alice {OFFICE_DESK} port 40200 [preauth]",
        f"Disconnected from authenticating user alice {OFFICE_DESK} port 40200 [preauth]",
        f"error: maximum authentication attempts exceeded for alice from {OFFICE_DESK} port 40200 ssh2 [preauth]",
        f"Failed password for alice from {OFFICE_DESK} port 40200 ssh2",
        f"Failed none for invalid user alice from {OFFICE_DESK} port 40200 ssh2",
    ],
)
def test_each_kind_of_sshd_refusal_is_one_refusal_of_that_user(message, who):
    found = refusals("prod-app1", [entry(at(0), 1100, message)], who)
    assert [(r.what, r.user, r.person) for r in found] == [("ssh", "alice", "alice")]


@pytest.mark.parametrize(
    "reason",
    ["user NOT in sudoers", "command not allowed", "3 incorrect password attempts", "1 incorrect password attempt",
     "a password is required", "user NOT authorized on host"],
)  # fmt: skip
def test_each_kind_of_sudo_refusal_is_one_refusal(reason, who):
    line = f"   carol : {reason} ; TTY=pts/0 ; PWD=/home/carol ; USER=root ; COMMAND=/usr/bin/id"
    found = refusals("prod-app1", [entry(at(0), 1200, line, program="sudo")], who)
    assert [(r.what, r.user, r.person, r.source, r.from_env) for r in found] == [("sudo", "carol", "carol", None, None)]
    assert found[0].line == line.strip()


def test_a_wrong_password_and_its_summary_count_once(who):
    journal = [
        pam_failure(at(0), 1201, "carol"),
        entry(at(9), 1201, "   carol : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/carol ; USER=root ; "
                           "COMMAND=/usr/bin/id", program="sudo"),
    ]  # fmt: skip
    found = refusals("prod-app1", journal, who)
    assert [r.line.split(" ; ")[0] for r in found] == ["carol : 3 incorrect password attempts"]


def test_an_authentication_failure_that_ran_nothing_counts(who):
    found = refusals("prod-app1", [pam_failure(at(0), 1202, "carol")], who)
    assert [(r.what, r.user, r.person) for r in found] == [("sudo", "carol", "carol")]


def test_not_in_sudoers_names_the_command(who):
    found = refusals("prod-db1", sudo_not_in_sudoers(at(0), 1203, "bob"), who)
    assert [(r.host, r.user) for r in found] == [("prod-db1", "bob")]
    assert "COMMAND=/usr/bin/cat /etc/shadow" in found[0].line


# ---- who and from where ------------------------------------------------------------------------------------
def test_the_key_names_its_holder_whatever_account_was_tried(site, who):
    found = refusals("prod-app1", refused_key(at(0), 1300, "root", DEV_HOST, key_of(site, "bob")), who)
    assert [(r.user, r.person, r.from_env) for r in found] == [("root", "bob", "dev")]


def test_an_unknown_key_on_a_person_s_account_names_the_account_s_person(who):
    found = refusals("prod-app1", refused_key(at(0), 1301, "carol", DEV_HOST, STRANGER_KEY), who)
    assert [(r.person, r.key) for r in found] == [("carol", STRANGER_KEY)]


def test_an_unknown_key_and_account_from_an_unknown_address_stay_unknown(who):
    found = refusals("prod-app1", invalid_user(at(0), 1302, "oracle", "192.0.2.9", STRANGER_KEY), who)
    assert [(r.person, r.from_env) for r in found] == [(None, None)]
    assert by_person(found) == {"?": {"ssh": 1, "sudo": 0}}


@pytest.mark.parametrize(
    ("source", "zone"),
    [("10.90.10.200", "dev"), ("10.90.20.5", "test"), ("10.90.30.21", "prod"), (OFFICE_DESK, "office"),
     ("10.90.60.3", "admins"), (CONTROLLER, "mgmt"), ("10.90.60.17", None), ("192.0.2.1", None),
     ("fe80::1", None), ("UNKNOWN", None), (None, None)],
)  # fmt: skip
def test_the_source_address_names_its_environment_access_network_or_management(source, zone, who):
    assert who.environment(source) == zone


def test_by_person_counts_ssh_and_sudo_apart(site, who):
    journal = refused_key(at(0), 1400, "alice", DEV_HOST, key_of(site, "alice"))
    journal += invalid_user(at(1), 1401, "alice", DEV_HOST, key_of(site, "alice"))
    journal += sudo_not_in_sudoers(at(2), 1402, "alice") + sudo_not_in_sudoers(at(3), 1403, "carol")
    journal += invalid_user(at(4), 1404, "admin", "192.0.2.9", STRANGER_KEY)
    assert by_person(refusals("prod-app1", journal, who)) == {
        "?": {"ssh": 1, "sudo": 0},
        "alice": {"ssh": 2, "sudo": 1},
        "carol": {"ssh": 0, "sudo": 1},
    }


def test_fingerprints_are_those_ssh_keygen_prints(site):
    for person in ("alice", "dave"):
        printed = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(DEMO_KEYS / f"{person}.pub")], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        assert key_of(site, person) == printed
