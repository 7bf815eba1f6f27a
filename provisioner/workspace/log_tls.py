"""The TLS material of log shipping (LOG-1): a certificate authority of the site's own, the receiver's certificate
for the controller's management address, and one client certificate per shipping host.

Production hosts upload their journal to the controller over HTTPS and check the receiver's certificate against
this authority, so a machine that takes the controller's address receives nothing. Everything lives in the site's
secrets folder (mode 0600 files, masked in every log like the other secrets); made once, then reused, and a
certificate is renewed when its name, address or authority changed or it is within 30 days of its end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioner.workspace.files import write_atomic

VALID_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertificatePair:
    key: Path
    cert: Path


def authority_files(secrets_dir: Path) -> CertificatePair:
    return CertificatePair(secrets_dir / "log-ca.key", secrets_dir / "log-ca.pem")


def receiver_files(secrets_dir: Path) -> CertificatePair:
    return CertificatePair(secrets_dir / "log-receiver.key", secrets_dir / "log-receiver.pem")


def host_files(secrets_dir: Path, host: str) -> CertificatePair:
    return CertificatePair(secrets_dir / f"log-upload-{host}.key", secrets_dir / f"log-upload-{host}.pem")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomic(path, pem, mode=0o600)
    return key


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC key")
    return key


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _fresh(cert: x509.Certificate | None) -> bool:
    return cert is not None and cert.not_valid_after_utc - RENEW_BEFORE > _now()


def _name(common_name: str, site: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"provisioner site {site}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_authority(secrets_dir: Path, site: str) -> x509.Certificate:
    """The site's log authority (made once; a missing or unreadable key makes a new one)."""
    files = authority_files(secrets_dir)
    cert = _load_cert(files.cert)
    if files.key.is_file() and _fresh(cert) and cert is not None:
        return cert
    key = _write_key(files.key)
    name = _name(f"log shipping authority of {site}", site)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o600)
    return cert


def _issued_by(cert: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(authority)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _ensure_leaf(
    secrets_dir: Path,
    site: str,
    files: CertificatePair,
    common_name: str,
    usage: x509.ObjectIdentifier,
    address: ipaddress.IPv4Address | None = None,
) -> CertificatePair:
    authority = ensure_authority(secrets_dir, site)
    current = _load_cert(files.cert)
    wanted_san = [x509.IPAddress(address)] if address is not None else [x509.DNSName(common_name)]
    if current is not None and files.key.is_file() and _fresh(current) and _issued_by(current, authority):
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if list(san) == wanted_san and names and names[0].value == common_name:
            return files
    ca_key = _load_key(authority_files(secrets_dir).key)
    key = _write_key(files.key)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, site))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(wanted_san), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o600)
    return files


def ensure_receiver(secrets_dir: Path, site: str, address: ipaddress.IPv4Address) -> CertificatePair:
    """The receiver's key and certificate, for the controller's management address."""
    return _ensure_leaf(
        secrets_dir, site, receiver_files(secrets_dir), str(address), ExtendedKeyUsageOID.SERVER_AUTH, address
    )


def ensure_host(secrets_dir: Path, site: str, host: str) -> CertificatePair:
    """A shipping host's client key and certificate (the uploader presents one)."""
    return _ensure_leaf(secrets_dir, site, host_files(secrets_dir, host), host, ExtendedKeyUsageOID.CLIENT_AUTH)
