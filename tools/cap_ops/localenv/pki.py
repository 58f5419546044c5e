"""A local certificate authority, a server certificate for localhost/127.0.0.1 and a client
certificate, made with `cryptography`. Existing files are kept while they stay valid for more
than 30 days, so `make up` is idempotent. Private keys are PKCS#8 PEM, mode 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
CLIENT_SAN = "local-client.cap-verifier.test"


@dataclass(frozen=True)
class PKIFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def under(cls, directory: Path) -> PKIFiles:
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
            client_cert=directory / "client.crt",
            client_key=directory / "client.key",
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _still_valid(cert_path: Path, key_path: Path) -> bool:
    if not cert_path.exists() or not key_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc - _now() > RENEW_BEFORE


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cap-verifier local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ensure_ca(files: PKIFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    if _still_valid(files.ca_cert, files.ca_key):
        cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key, False
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("cap-verifier local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + VALIDITY)
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
    _write_key(files.ca_key, key)
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, True


def _issue(
    ca_cert: x509.Certificate,
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    cert_path: Path,
    key_path: Path,
    validity: dt.timedelta = VALIDITY,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + validity)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


SERVER_NAMES = ("localhost", "127.0.0.1")


def issue_server_pair(files: PKIFiles, validity: dt.timedelta, cert: Path, key: Path) -> None:
    """A serving pair like the one `make up` makes, signed by the local CA, valid for
    ``validity`` (tests serve a certificate about to expire), written to ``cert`` and ``key``."""
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    _issue_server(ca_cert, ca_key, cert, key, validity)


def _issue_server(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cert: Path,
    key: Path,
    validity: dt.timedelta = VALIDITY,
) -> None:
    _issue(
        ca_cert,
        ca_key=ca_key,
        common_name=SERVER_NAMES[0],
        sans=[x509.DNSName(SERVER_NAMES[0]), x509.IPAddress(ipaddress.ip_address(SERVER_NAMES[1]))],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        cert_path=cert,
        key_path=key,
        validity=validity,
    )


def ensure_pki(directory: Path) -> PKIFiles:
    """Create what is missing or about to expire; a new CA re-issues both leaves."""
    directory.mkdir(parents=True, exist_ok=True)
    files = PKIFiles.under(directory)
    ca_cert, ca_key, new_ca = _ensure_ca(files)
    if new_ca or not _still_valid(files.server_cert, files.server_key):
        _issue_server(ca_cert, ca_key, files.server_cert, files.server_key)
    if new_ca or not _still_valid(files.client_cert, files.client_key):
        _issue(
            ca_cert,
            ca_key=ca_key,
            common_name=CLIENT_SAN,
            sans=[x509.DNSName(CLIENT_SAN)],
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            cert_path=files.client_cert,
            key_path=files.client_key,
        )
    return files
