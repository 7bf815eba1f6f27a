"""A throwaway copy of the example site for release-path tests: `provision release ...` against its own state,
with ledger steps that need hosts (a deploy, a verify) appended the way the real ones append them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT, example_data, release_artifact, run_cli, write_site

from provisioner.releases.ledger import Ledger
from provisioner.workspace.site_state import SiteState

DEMO_KEYS = ROOT / "inventories" / "example" / "demo-keys"


@pytest.fixture
def shop(tmp_path):
    data = example_data()
    data["site"] = "relrules"
    data["deploy"]["key_file"] = str(DEMO_KEYS / "deploy")
    site = write_site(tmp_path / "inventories" / "relrules", data)
    env = {"PROVISION_STATE_DIR": str(tmp_path / "state")}
    return Shop(site, tmp_path, env)


class Shop:
    def __init__(self, site: Path, tmp: Path, env: dict[str, str]):
        self.site, self.tmp, self.env = site, tmp, env
        self.state = SiteState("relrules", tmp / "state" / "relrules")

    def cli(self, *args: str, sign: bool = True):
        """`provision release ...`; a decision (create, approve) is signed with the demo key of its --as person
        unless `sign` is false or the arguments bring their own signature."""
        extra: list[str] = []
        if (
            sign
            and args[0] in ("create", "approve")
            and "--as" in args
            and not {"--sign-key", "--statement"} & set(args)
        ):
            person = args[args.index("--as") + 1]
            if (DEMO_KEYS / person).is_file():
                extra = ["--sign-key", str(DEMO_KEYS / person)]
        return run_cli("release", *args, *extra, "--site", str(self.site), env=self.env)

    def create(self, version: str = "1.0.0", author: str = "alice") -> str:
        result = self.cli("create", "--artifact", str(release_artifact(self.tmp, version)), "--as", author, "--json")
        assert result.rc == 0, result.stderr
        return result.json["release"]

    def record(self, **entry) -> None:
        """What a real deploy or verify run appends (see ReleaseBook.deploy / record_verify)."""
        ledger = Ledger(self.state)
        with ledger.locked():
            ledger.append(entry)

    def deployed(self, release: str, env: str) -> None:
        digest = next(e["digest"] for e in Ledger(self.state).entries() if e.get("release") == release)
        self.record(event="deploy", release=release, env=env, result="ok", actor="dave", identity="deploy",
                    digest=digest)  # fmt: skip

    def verified(self, release: str, env: str, result: str = "ok") -> None:
        digest = next(e["digest"] for e in Ledger(self.state).entries() if e.get("release") == release)
        self.record(event="verify", release=release, env=env, result=result, actor="provision verify", digest=digest)

    def ledger_bytes(self) -> bytes:
        return Ledger(self.state).path.read_bytes() + Ledger(self.state).head_path.read_bytes()

    def refused(self, *args: str, because: str, sign: bool = True) -> None:
        before = self.ledger_bytes()
        result = self.cli(*args, sign=sign)
        assert result.rc == 3, (result.rc, result.stdout, result.stderr)
        assert because in " ".join(result.stderr.split()), result.stderr
        assert self.ledger_bytes() == before, "a refused step changes nothing"
