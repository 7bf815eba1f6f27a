"""Four-eyes that cannot be faked (CHG-2, ACC-7): a decision counts only with its maker's own signature.

Every refusal exits 3 and leaves the ledger's bytes as they were; the signatures are made with the example
people's demo keys and checked again, later, against the key history the ledger keeps.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from helpers import release_artifact, run_cli
from release_shop import DEMO_KEYS, Shop

from provisioner.releases.decisions import NAMESPACE
from provisioner.releases.ledger import Ledger


def _sign(statement: Path, key: str) -> Path:
    private = statement.parent / f"{key}.key"
    private.write_bytes((DEMO_KEYS / key).read_bytes())
    private.chmod(0o600)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(private), str(statement)], check=True)
    return Path(f"{statement}.sig")


def _statement(shop: Shop, release: str, person: str, name: str = "statement.txt") -> Path:
    """What `approve` prints (stdout) when no signature comes with it: the statement to sign elsewhere."""
    result = shop.cli("approve", release, "--as", person, sign=False)
    assert result.rc == 3, result.stderr
    assert "no signature" in result.stderr and "ssh-keygen -Y sign -n provision-decision" in result.stderr
    path = shop.tmp / name
    path.write_text(result.stdout)
    return path


def test_approval_without_a_signature_is_refused_and_prints_what_to_sign(shop):
    release = shop.create()
    before = shop.ledger_bytes()
    statement = _statement(shop, release, "erin")
    text = statement.read_text()
    assert text.startswith("provision decision v1\n") and f"subject: {release}\n" in text and "person: erin\n" in text
    assert shop.ledger_bytes() == before


def test_approval_signed_on_the_approvers_machine_is_recorded_with_its_statement(shop):
    release = shop.create()
    statement = _statement(shop, release, "erin")
    signature = _sign(statement, "erin")
    result = shop.cli("approve", release, "--as", "erin", "--statement", str(statement), "--signature", str(signature))
    assert result.rc == 0, result.stderr
    entry = Ledger(shop.state).entries()[-1]
    assert entry["event"] == "approve" and entry["signer"] == "erin"
    assert entry["statement"] == statement.read_text() and entry["signature"] == signature.read_text().strip()
    assert shop.cli("verify-ledger").rc == 0


def test_approval_with_another_persons_key_is_refused(shop):
    release = shop.create()
    shop.refused("approve", release, "--as", "erin", "--sign-key", str(DEMO_KEYS / "dave"),
                 because="the signature is not erin's over this statement")  # fmt: skip
    statement = _statement(shop, release, "erin")
    shop.refused("approve", release, "--as", "erin", "--statement", str(statement),
                 "--signature", str(_sign(statement, "dave")), because="is not erin's")  # fmt: skip


def test_approval_with_a_signature_over_another_release_or_digest_is_refused(shop):
    first, second = shop.create("1.0.0"), shop.create("1.1.0")
    statement = _statement(shop, first, "erin")
    signature = _sign(statement, "erin")
    shop.refused("approve", second, "--as", "erin", "--statement", str(statement), "--signature", str(signature),
                 because=f"subject is {first}, but this decision's is {second}")  # fmt: skip
    forged = shop.tmp / "forged.txt"
    text = statement.read_text()
    digest = next(line for line in text.splitlines() if line.startswith("digest: "))
    forged.write_text(text.replace(digest, "digest: sha256:" + "0" * 64))
    shop.refused("approve", first, "--as", "erin", "--statement", str(forged), "--signature", str(signature),
                 because="digest is")  # fmt: skip
    same = shop.tmp / "same-digest.txt"  # the right words, someone else's signature bytes: verification fails
    same.write_text(text)
    shop.refused("approve", first, "--as", "erin", "--statement", str(same),
                 "--signature", str(_sign(forged, "erin")), because="is not erin's")  # fmt: skip


def test_a_key_removed_from_the_site_file_signs_nothing_new_but_its_old_decisions_still_verify(shop):
    first, second = shop.create("1.0.0"), shop.create("1.1.0")
    assert shop.cli("approve", first, "--as", "erin").rc == 0  # signed with erin's key of the time
    data = yaml.safe_load(shop.site.read_text())
    erin = next(p for p in data["people"] if p["name"] == "erin")
    new_key = shop.tmp / "erin-new"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "erin-2027", "-f", str(new_key)], check=True)
    erin["ssh_key"] = Path(f"{new_key}.pub").read_text().strip()  # the old key is revoked
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))
    shop.refused("approve", second, "--as", "erin", "--sign-key", str(DEMO_KEYS / "erin"),
                 because="the signature is not erin's")  # fmt: skip
    assert shop.cli("approve", second, "--as", "erin", "--sign-key", str(new_key)).rc == 0
    check = shop.cli("verify-ledger", "--json")
    assert check.rc == 0 and check.json["ok"], check.stdout
    people = [e["people"]["erin"] for e in Ledger(shop.state).entries() if e["event"] == "keys"]
    assert len(people) == 2 and people[0] != people[1], "the key history keeps both keys, in order"


def test_a_decision_whose_signature_was_swapped_fails_the_ledger_check(shop):
    """Entries re-signed with the controller's evidence key (as an intruder holding it could) still fail: the
    person's signature over the statement does not verify."""
    release = shop.create()
    assert shop.cli("approve", release, "--as", "erin").rc == 0
    ledger = Ledger(shop.state)
    entries = ledger.entries()
    other = next(e for e in entries if e["event"] == "create")["signature"]  # alice's, over another statement
    approve = entries[-1]
    lines = ledger.path.read_text().splitlines(keepends=True)[:-1]
    ledger.path.write_text("".join(lines))
    ledger.head_path.unlink()
    ledger.path.write_text("")
    with ledger.locked():
        for entry in entries[:-1]:
            ledger.append({k: v for k, v in entry.items() if k not in ("seq", "time", "prev", "hash", "sig")})
        ledger.append({**{k: v for k, v in approve.items() if k not in ("seq", "time", "prev", "hash", "sig")},
                       "signature": other})  # fmt: skip
    check = shop.cli("verify-ledger", "--json")
    assert check.rc == 1 and any("signature does not verify" in p for p in check.json["problems"]), check.stdout


def test_a_hotfix_needs_the_sites_emergency_rule_and_is_signed_as_a_hotfix(shop):
    shop.create("0.9.0")
    data = yaml.safe_load(shop.site.read_text())
    data["releases"].pop("hotfix", None)
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))
    artifact = str(release_artifact(shop.tmp, "1.0.1"))
    shop.refused("create", "--artifact", artifact, "--as", "alice", "--hotfix", because="no emergency-fix rule")
    data["releases"]["hotfix"] = {"approvals_within_hours": 4}
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))
    created = shop.cli("create", "--artifact", artifact, "--as", "alice", "--hotfix", "--json")
    assert created.rc == 0 and created.json["hotfix"] is True, created.stderr
    assert "decision: create-hotfix\n" in created.json["statement"]
    assert shop.cli("verify-ledger").rc == 0


def test_a_hotfix_still_runs_in_test_and_passes_verify_but_may_reach_production_before_its_approval(shop):
    release = shop.create("1.0.0")  # a normal release: approval before production
    hotfix = shop.cli("create", "--artifact", str(release_artifact(shop.tmp, "1.0.1")), "--as", "alice", "--hotfix",
                      "--json").json["release"]  # fmt: skip
    for rid in (release, hotfix):
        shop.deployed(rid, "dev")
    shop.refused("deploy", hotfix, "--env", "prod", because="has not run in test")
    for rid in (release, hotfix):
        shop.deployed(rid, "test")
    shop.refused("deploy", hotfix, "--env", "prod", because="has not passed `provision verify` in test")
    shop.verified(release, "test")
    shop.verified(hotfix, "test")
    shop.refused("deploy", release, "--env", "prod", because="needs 1 approval(s)")
    from provisioner.releases import rules
    from provisioner.releases.history import replay
    from provisioner.site.load import load_site

    history = replay(Ledger(shop.state).entries())
    rules.check_deploy(load_site(shop.site).model, history, history.releases[hotfix], "prod")  # allowed


def test_a_waiver_takes_effect_only_once_its_approver_signed_what_the_site_file_says(shop):
    from provisioner.releases.decisions import signed_waivers
    from provisioner.site.load import load_site

    shop.create()  # the ledger exists
    data = yaml.safe_load(shop.site.read_text())
    data["waivers"] = [{"id": "W-1", "control": "ACC-4", "justification": "two-person team: dave also deploys",
                        "requester": "dave", "approver": "erin", "risk": "medium", "expires": "2030-01-31",
                        "compensating": ["session logging"]}]  # fmt: skip
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))

    def waiver(*args: str, sign: bool = True):
        extra = ["--sign-key", str(DEMO_KEYS / args[2])] if sign else []
        return run_cli("waiver", "approve", *args, *extra, "--site", str(shop.site), env=shop.env)

    before = shop.ledger_bytes()
    unsigned = waiver("W-1", "--as", "erin", sign=False)
    assert unsigned.rc == 3 and "decision: waiver-approve\n" in unsigned.stdout and "subject: W-1\n" in unsigned.stdout
    other = waiver("W-1", "--as", "dave")
    assert other.rc == 3 and "names erin as the approver" in other.stderr
    assert shop.ledger_bytes() == before
    assert waiver("W-1", "--as", "erin").rc == 0
    assert signed_waivers(Ledger(shop.state).entries(), load_site(shop.site).model) == {"W-1"}
    again = waiver("W-1", "--as", "erin", "--json")
    assert again.rc == 0 and again.json["recorded"] is False
    data["waivers"][0]["expires"] = "2031-01-31"  # an edit after the signature: erin must sign it again
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))
    assert signed_waivers(Ledger(shop.state).entries(), load_site(shop.site).model) == set()
    assert shop.cli("verify-ledger").rc == 0


def test_a_refresh_authorisation_is_signed_by_its_approver_as_the_site_file_states_it(shop):
    from provisioner.releases.decisions import signed_authorisations
    from provisioner.site.load import load_site

    shop.create()
    data = yaml.safe_load(shop.site.read_text())
    data["test_data"] = {"authorisations": [{"id": "CHG-7", "from": "prod", "to": "test", "requester": "alice",
                                             "approver": "erin", "reason": "reproduce ticket 4711 with real shapes",
                                             "scrub_by": "2030-01-31"}]}  # fmt: skip
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))

    def authorise(person: str, *extra: str):
        return run_cli("data", "authorise", "CHG-7", "--as", person, *extra, "--site", str(shop.site), env=shop.env)

    before = shop.ledger_bytes()
    unsigned = authorise("erin")
    assert (
        unsigned.rc == 3
        and "decision: data-authorise\n" in unsigned.stdout
        and "environment: test\n" in unsigned.stdout
    )
    assert authorise("alice", "--sign-key", str(DEMO_KEYS / "alice")).rc == 3, "only the named approver signs"
    assert authorise("erin", "--sign-key", str(DEMO_KEYS / "dave")).rc == 3, "with their own key"
    assert shop.ledger_bytes() == before
    assert authorise("erin", "--sign-key", str(DEMO_KEYS / "erin")).rc == 0
    assert signed_authorisations(Ledger(shop.state).entries(), load_site(shop.site).model) == {"CHG-7"}
    data["test_data"]["authorisations"][0]["scrub_by"] = "2031-01-31"  # edited after signing: not what erin signed
    shop.site.write_text(yaml.safe_dump(data, sort_keys=False))
    assert signed_authorisations(Ledger(shop.state).entries(), load_site(shop.site).model) == set()
