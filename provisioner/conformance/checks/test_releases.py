"""CHG-1..4 (the path to live, read from the release ledger and the hosts) and CUE-2's web banner."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from provisioner.releases.decisions import decision_problems
from provisioner.releases.history import History, replay
from provisioner.releases.ledger import Ledger
from provisioner.releases.rules import release_path
from provisioner.site.vocabulary import COLOURS

APP_ROOT = "/srv/app"
ANCHOR = "/var/lib/provision-deploy/ledger-head"  # roles/app: app_ledger_anchor
MARKER = ".provision-release"


def _history(lab) -> tuple[Ledger, History]:
    ledger = Ledger(lab.state)
    problems = ledger.problems()
    assert not problems, f"the release ledger does not verify: {problems[0]}"
    return ledger, replay(ledger.entries())


def _running(lab, address: str) -> dict[str, str] | None:
    marker = lab.remote.host(address).file(f"{APP_ROOT}/current/{MARKER}")
    return json.loads(marker.content_string) if marker.exists else None


def _anchor_problems(lab, evidence, entries: list[dict[str, object]]) -> list[str]:
    """Each app host keeps the ledger's head as it was at its last deploy (the deploy command writes it and never
    moves it back): the controller's ledger must hold that entry, unchanged."""
    problems = []
    for host in lab.model.hosts:
        if "app" not in host.roles or host.environment not in release_path(lab.model):
            continue
        anchor = lab.remote.host(str(host.address)).file(ANCHOR)
        if not anchor.exists:
            evidence.note(f"{host.name}: no deploy yet, no ledger head kept")
            continue
        count_text, _, seen = anchor.content_string.strip().partition(" ")
        count = int(count_text) if count_text.isdigit() else 0
        ours = str(entries[count - 1].get("hash")) if 0 < count <= len(entries) else "(none)"
        evidence.row(host=host.name, kept_head=f"{count} {seen[:16]}…", controller=f"{len(entries)} entries")
        if count > len(entries):
            problems.append(
                f"{host.name} saw the ledger at entry {count}, but the controller's holds {len(entries)}: "
                "the ledger was rolled back to an older copy"
            )
        elif ours != seen:
            problems.append(f"{host.name} saw a different entry {count}: the controller's ledger diverged")
    return problems


@pytest.mark.control("CHG-4")
def test_release_ledger_is_chained_signed_and_complete(lab, evidence):
    ledger = Ledger(lab.state)
    evidence.expect(
        "every entry chains to the one before, carries a valid signature, and the signed head matches; every "
        "decision carries its maker's own signature, made with the key the site file listed for them then"
    )
    problems: list[object] = list(ledger.problems())
    entries = ledger.entries()
    if not problems:
        problems = [f"entry {seq}: {why}" for seq, why in sorted(decision_problems(entries).items())]
    problems += _anchor_problems(lab, evidence, entries)
    evidence.note(f"ledger {ledger.path}: {len(entries)} entries")
    for entry in entries:
        evidence.row(seq=entry.get("seq"), time=entry.get("time"), event=entry.get("event"),
                     release=entry.get("release"), actor=entry.get("actor"), env=entry.get("env", ""),
                     digest=entry.get("digest"), hash=entry.get("hash"))  # fmt: skip
    evidence.observe("; ".join(str(p) for p in problems) or f"{len(entries)} entries verify")
    assert not problems, f"the release ledger does not verify: {problems[0]}"


@pytest.mark.control("CHG-1")
def test_host_runs_the_release_the_ledger_says(lab, evidence, app_host_name):
    host = lab.host(app_host_name)
    if host.environment not in release_path(lab.model):
        pytest.skip(f"{host.environment} is not on the release path")
    _, history = _history(lab)
    expected = history.running(host.environment)
    running = _running(lab, str(host.address))
    want = f"{expected.id} {expected.digest}" if expected else "no release"
    got = f"{running['release']} {running['digest']}" if running else "no release"
    evidence.expect(f"{host.environment} runs {want} (last deploy recorded in the ledger)")
    evidence.observe(f"{app_host_name} runs {got}")
    assert want == got, f"{app_host_name} runs {got}, but the ledger's last deploy to {host.environment} is {want}"
    if expected is not None and lab.model.environment(host.environment).tier == "production":
        path = release_path(lab.model)
        before = path[path.index(host.environment) - 1]
        deployed = expected.deployed(host.environment)
        passed = [v for v in expected.verifications if v["env"] == before and v["result"] == "ok"
                  and deployed is not None and v["time"] < deployed.time]  # fmt: skip
        evidence.note(f"{expected.id} passed verify in {before} at {passed[-1]['time'] if passed else 'never'}")
        assert passed, f"{expected.id} reached {host.environment} without a passing verify in {before}"


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _hotfix_verdict(lab, release, deployment, approvals: list[dict], required: int) -> tuple[str, str | None]:
    """An emergency fix may be approved after it reached production, within releases.hotfix's deadline: it
    passes while the deadline runs, and fails from the deadline on until enough approvals have arrived."""
    hours = lab.model.releases.hotfix.approvals_within_hours
    deadline = _time(deployment.time) + dt.timedelta(hours=hours)
    due = deadline.strftime("%Y-%m-%d %H:%M UTC")
    in_time = {a["by"] for a in approvals if _time(a["time"]) <= deadline}
    every = {a["by"] for a in approvals}
    if len(in_time) >= required:
        return f"hotfix, approved after the deploy within {hours} h", None
    if dt.datetime.now(dt.UTC) < deadline:
        return f"hotfix, {len(in_time)} of {required} approval(s) so far, due by {due}", None
    if len(every) >= required:
        return f"hotfix, approved late (after {due})", None
    return (
        f"hotfix, {len(every)} of {required} approval(s), due by {due}",
        f"{release.id} (hotfix) reached {deployment.env} and its approvals were due by {due}: "
        f"it has {len(every)} of {required}",
    )


@pytest.mark.control("CHG-2")
def test_every_production_deploy_was_approved_by_someone_else(lab, evidence):
    ledger, history = _history(lab)
    unsigned = decision_problems(ledger.entries())  # an approval counts only with its approver's own signature
    required = lab.model.releases.required_approvals
    production = [e for e in release_path(lab.model) if lab.model.environment(e).tier == "production"]
    hotfix = lab.model.releases.hotfix
    evidence.expect(
        f"each deploy to {', '.join(production)} had {required} signed approval(s) by others than the author"
        + (f"; a hotfix within {hotfix.approvals_within_hours} h after it" if hotfix else "")
    )
    problems = []
    deploys = 0
    for release in history.releases.values():
        approvals = [a for a in release.approvals if a["by"] != release.author and a["seq"] not in unsigned]
        for deployment in release.deployments:
            if deployment.env not in production or deployment.result != "ok":
                continue
            deploys += 1
            before = {a["by"] for a in approvals if a["time"] < deployment.time}
            note, problem = f"{len(before)} before the deploy", None
            if len(before) < required and release.hotfix and hotfix is not None:
                note, problem = _hotfix_verdict(lab, release, deployment, approvals, required)
            elif len(before) < required:
                problem = f"{release.id} reached {deployment.env} with {len(before)} approval(s)"
            evidence.row(release=release.id, digest=release.digest, author=release.author, env=deployment.env,
                         deployed=deployment.time, approved_by=", ".join(sorted({a["by"] for a in approvals}))
                         or "nobody", hotfix="yes" if release.hotfix else "no", note=note)  # fmt: skip
            if problem:
                problems.append(problem)
    evidence.observe("; ".join(problems) or f"{deploys} production deploy(s), each approved by someone else")
    assert not problems, "; ".join(problems)


@pytest.mark.control("CHG-3")
def test_production_files_are_exactly_what_the_release_deployed(lab, evidence, prod_app_host_name):
    host = lab.host(prod_app_host_name)
    address = str(host.address)
    _, history = _history(lab)
    release = history.running(host.environment)
    listing = lab.remote.run_as_root(
        address, f"sh -c 'cd {APP_ROOT}/current 2>/dev/null && find . -type f ! -name {MARKER} -exec sha256sum {{}} +'"
    )
    observed = {}
    for line in listing.stdout.splitlines():
        digest, _, name = line.partition("  ")
        observed[name.removeprefix("./")] = digest
    expected = dict(release.files) if release is not None else {}
    evidence.expect(
        f"{APP_ROOT}/current holds exactly the {len(expected)} files of {release.id if release else 'no release'}"
    )
    changed = sorted(n for n in expected if n in observed and observed[n] != expected[n])
    missing = sorted(set(expected) - set(observed))
    extra = sorted(set(observed) - set(expected))
    for name in sorted(set(expected) | set(observed)):
        evidence.row(file=name, expected=expected.get(name, "-"), observed=observed.get(name, "-"))
    problems = [f"{label}: {', '.join(names)}" for label, names in
                (("changed by hand", changed), ("missing", missing), ("not deployed", extra)) if names]  # fmt: skip
    evidence.observe("; ".join(problems) or "no drift")
    assert not problems, f"{prod_app_host_name}: " + "; ".join(problems)


@pytest.mark.control("CUE-2")
def test_web_pages_show_the_environment_banner_outside_production(lab, evidence, app_host_name):
    host = lab.host(app_host_name)
    env = lab.model.environment(host.environment)
    production = env.tier == "production"
    page = lab.remote.host(str(host.address)).run("curl -fsS --max-time 5 http://127.0.0.1/")
    assert page.rc == 0, f"{app_host_name} does not serve its page: {page.stderr.strip()}"
    banner = 'id="provision-env-banner"' in page.stdout
    colour = f"background:{COLOURS[env.colour].hex}" in page.stdout
    evidence.expect("no banner (production)" if production else f"a {env.colour} banner naming {env.name.upper()}")
    evidence.observe(f"banner {'present' if banner else 'absent'}" + (f", {env.colour}" if banner and colour else ""))
    if production:
        assert not banner, f"{app_host_name} shows an environment banner in production"
    else:
        shown = banner and colour and env.name.upper() in page.stdout
        assert shown, f"{app_host_name}'s page lacks its {env.name} banner"
