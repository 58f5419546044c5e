"""Throw-away certificate authorities for tests (trustme), keys written as PKCS#8 (granian)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    ca: trustme.CA
    ca_cert: Path
    server: CertFiles
    client: CertFiles
    """A client certificate from this CA with DNS SAN ``client.cap.test``."""
    foreign_client: CertFiles
    """A client certificate from another CA."""


def _write_pkcs8(leaf: trustme.LeafCert, directory: Path, name: str) -> CertFiles:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    key_path = directory / f"{name}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    cert_path = directory / f"{name}.crt"
    leaf.cert_chain_pems[0].write_to_path(str(cert_path))
    return CertFiles(cert=cert_path, key=key_path)


def make_pki(directory: Path) -> PKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_cert = directory / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_cert))
    other_ca = trustme.CA()
    return PKI(
        ca=ca,
        ca_cert=ca_cert,
        server=_write_pkcs8(ca.issue_cert("127.0.0.1", "localhost"), directory, "server"),
        client=_write_pkcs8(ca.issue_cert("client.cap.test"), directory, "client"),
        foreign_client=_write_pkcs8(other_ca.issue_cert("client.cap.test"), directory, "foreign"),
    )
