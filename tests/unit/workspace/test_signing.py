"""Evidence signatures: made with the site's key, checked by stock OpenSSH, broken by any change."""

from __future__ import annotations

from provisioner.workspace import signing
from provisioner.workspace.site_state import SiteState


def test_signature_verifies_and_any_change_breaks_it(tmp_path):
    state = SiteState("sig", tmp_path / "sig")
    data = b'{"seq": 1, "event": "create"}\n'
    signature = signing.sign(state, data, "provision-ledger")
    public = signing.public_key(state)
    assert (state.signing_dir / signing.KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert signing.verify(public, signing.identity(state), data, signature, "provision-ledger") is None
    assert signing.verify(public, signing.identity(state), data.replace(b"1", b"2"), signature, "provision-ledger")
    assert signing.verify(public, signing.identity(state), data, signature, "provision-report"), "namespace is bound"
    other = SiteState("other", tmp_path / "other")
    assert signing.verify(signing.public_key(other), signing.identity(state), data, signature, "provision-ledger")


def test_the_key_survives_and_is_masked(tmp_path):
    state = SiteState("sig", tmp_path / "sig")
    public = signing.public_key(state)
    assert signing.public_key(state) == public, "created once"
    private = (state.signing_dir / signing.KEY_NAME).read_text().strip()
    assert private in state.secret_values()
    state.forget_lab()
    assert signing.public_key(state) == public, "a destroy keeps evidence verifiable"
