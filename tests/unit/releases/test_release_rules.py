"""The path to live refuses every shortcut, says why, and changes nothing (CHG-1, CHG-2, CHG-4).

Steps that need hosts (a deploy that passed) are written to the ledger with its own signed append, as a
real deploy would; tests/lab/test_release_lab.py walks the same path with real deploys.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import example_data, release_artifact, write_site
from release_shop import DEMO_KEYS

from provisioner.releases.ledger import Ledger
from provisioner.workspace.site_state import SiteState


def test_create_records_the_digest_and_author_in_a_signed_ledger(shop):
    artifact = release_artifact(shop.tmp, "1.0.0")
    result = shop.cli("create", "--artifact", str(artifact), "--as", "alice", "--json")
    assert result.rc == 0, result.stderr
    entry = result.json
    assert entry["release"] == "r1" and entry["actor"] == "alice" and entry["version"] == "1.0.0"
    assert entry["digest"] == "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert set(entry["files"]) == {"VERSION", "index.html"}
    check = shop.cli("verify-ledger", "--json")
    assert check.rc == 0 and check.json["ok"], check.stdout
    stored = json.loads(Ledger(shop.state).path.read_text().splitlines()[0])
    assert stored["sig"].startswith("-----BEGIN SSH SIGNATURE-----")
    shop.refused("create", "--artifact", str(artifact), "--as", "bob", because="already release r1")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a tarball", "not a .tar.gz archive"), (None, "has no VERSION file")],
)
def test_a_malformed_artifact_is_bad_input(shop, content, message):
    if content is None:
        import tarfile

        path = shop.tmp / "empty.tar.gz"
        with tarfile.open(path, "w:gz"):
            pass
    else:
        path = shop.tmp / "junk.tar.gz"
        path.write_bytes(content)
    result = shop.cli("create", "--artifact", str(path), "--as", "alice")
    assert result.rc == 2 and message in result.stderr, result.stderr
    assert not Ledger(shop.state).path.exists(), "nothing was recorded"


def test_an_unknown_author_is_bad_input(shop):
    result = shop.cli("create", "--artifact", str(release_artifact(shop.tmp, "1.0.0")), "--as", "mallory")
    assert result.rc == 2 and "--as mallory: not a person" in result.stderr and "alice" in result.stderr


def test_skipping_test_is_refused(shop):
    release = shop.create()
    shop.refused("deploy", release, "--env", "test", because="has not run in dev: a release reaches test only after")
    shop.deployed(release, "dev")
    shop.refused("deploy", release, "--env", "prod", because="has not run in test")


def test_promoting_backwards_is_refused(shop):
    first = shop.create("1.0.0")
    shop.deployed(first, "dev")
    shop.deployed(first, "test")
    shop.refused("deploy", first, "--env", "dev", because="already reached test; nothing moves backwards")
    second = shop.create("1.1.0")
    third = shop.create("1.2.0")
    shop.deployed(third, "dev")
    shop.refused("deploy", second, "--env", "dev", because="dev runs r3, which is newer than r2")


def test_self_approval_is_refused(shop):
    release = shop.create(author="alice")
    shop.refused("approve", release, "--as", "alice", because="author of release r1 and cannot approve it")
    shop.refused("approve", release, "--as", "carol", because="approving a release needs the role approver")
    unknown = shop.cli("approve", release, "--as", "mallory")
    assert unknown.rc == 2 and "not a person" in unknown.stderr


def test_production_needs_a_verified_test_run_and_enough_approvals(shop):
    data = example_data()
    data["site"] = "relrules"
    data["deploy"]["key_file"] = str(DEMO_KEYS / "deploy")
    data["releases"]["required_approvals"] = 2
    next(p for p in data["people"] if p["name"] == "dave")["roles"].append("approver")
    write_site(shop.site.parent, data)
    release = shop.create(author="alice")
    shop.deployed(release, "dev")
    shop.deployed(release, "test")
    shop.verified(release, "test", result="failed")
    shop.refused("deploy", release, "--env", "prod", because="has not passed `provision verify` in test")
    shop.verified(release, "test")
    shop.refused("deploy", release, "--env", "prod", because="needs 2 approval(s) from someone other than its author")
    approved = shop.cli("approve", release, "--as", "erin", "--json")
    assert approved.rc == 0 and approved.json["actor"] == "erin", approved.stderr
    again = shop.cli("approve", release, "--as", "erin", "--json")
    assert again.rc == 0 and again.json["recorded"] is False, "one person's approval counts once"
    shop.refused("deploy", release, "--env", "prod", because="it has 1 (erin)")


def test_a_developers_key_cannot_deploy(shop):
    release = shop.create(author="alice")
    shop.deployed(release, "dev")
    shop.deployed(release, "test")
    shop.verified(release, "test")
    assert shop.cli("approve", release, "--as", "erin").rc == 0
    shop.refused(
        "deploy", release, "--env", "prod", "--key", str(DEMO_KEYS / "alice"),
        because="deploys run only as the deploy identity 'deploy'; the key",
    )  # fmt: skip
    result = shop.cli("deploy", release, "--env", "prod", "--key", str(DEMO_KEYS / "alice"))
    assert "is alice's" in " ".join(result.stderr.split())


def _lines(shop) -> list[str]:
    return Ledger(shop.state).path.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("tamper", ["edit", "reorder", "delete-middle", "delete-last", "forge-signature"])
def test_a_tampered_ledger_is_detected_and_blocks_every_step(shop, tamper):
    release = shop.create(author="alice")
    shop.deployed(release, "dev")
    assert shop.cli("approve", release, "--as", "erin").rc == 0
    lines = _lines(shop)
    if tamper == "edit":
        created = next(i for i, line in enumerate(lines) if '"event": "create"' in line)
        lines[created] = lines[created].replace('"actor": "alice"', '"actor": "bob"')
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "delete-middle":
        del lines[1]
    elif tamper == "delete-last":
        del lines[-1]
    else:  # re-hash an edited entry and sign it with a key that is not the site's
        other = SiteState("intruder", shop.tmp / "intruder")
        from provisioner.releases.ledger import NAMESPACE, entry_hash
        from provisioner.workspace.signing import sign

        entry = json.loads(lines[2])
        entry["actor"] = "alice"
        entry["hash"] = entry_hash(entry)
        entry["sig"] = sign(other, entry["hash"].encode(), NAMESPACE)
        lines[2] = json.dumps(entry, sort_keys=True) + "\n"
    Ledger(shop.state).path.write_text("".join(lines))
    check = shop.cli("verify-ledger", "--json")
    assert check.rc == 1 and not check.json["ok"] and check.json["problems"], check.stdout
    shop.refused("deploy", release, "--env", "test", because="does not verify")
    shop.refused("approve", release, "--as", "dave", because="does not verify")


def test_an_append_interrupted_before_its_head_is_adopted(shop):
    shop.create("1.0.0")
    head = Ledger(shop.state).head_path.read_bytes()
    shop.create("1.1.0")
    Ledger(shop.state).head_path.write_bytes(head)  # as if the process died between the line and its head
    assert shop.cli("verify-ledger").rc == 0, "the extra entry is chained and signed"
    shop.create("1.2.0")
    assert json.loads(Ledger(shop.state).head_path.read_text())["count"] == 4  # the people's keys, 3 releases
    assert shop.cli("verify-ledger").rc == 0
    lines = _lines(shop)
    Ledger(shop.state).path.write_text("".join(lines[:-2]))
    assert shop.cli("verify-ledger").rc == 1, "two entries cut off the end are not an interrupted append"
