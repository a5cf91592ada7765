# SPDX-License-Identifier: Apache-2.0
"""Certificates the TLS tests make for themselves (the ``cryptography``
package): a CA, a server certificate for 127.0.0.1 and localhost and a
client certificate it signed, and a second, unrelated CA with a client and a
server certificate of its own (what must be refused). ECDSA P-256 keys:
quick to make, and what a modern deployment uses."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Certificates", "make_certificates"]

LOOPBACK_NAMES = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


@dataclass(frozen=True)
class Certificates:
    """PEM files in one directory. ``ca`` signed ``server`` and ``client``;
    ``other_ca`` signed ``other_server`` and ``other_client``."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_server_cert: Path
    other_server_key: Path
    other_client_cert: Path
    other_client_key: Path


def make_certificates(directory: Path) -> Certificates:
    """Writes a fresh set of certificates and keys under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _authority("tf-graphpipe test CA")
    other_key, other_cert = _authority("some other CA")
    written = {
        "ca": _write_cert(directory / "ca.pem", ca_cert),
        "other_ca": _write_cert(directory / "other-ca.pem", other_cert),
    }
    for prefix, (issuer_key, issuer) in (("", (ca_key, ca_cert)), ("other_", (other_key, other_cert))):
        for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
            key, cert = _leaf(f"{prefix}{role}", issuer_key, issuer, usage, server=role == "server")
            stem = f"{prefix}{role}".replace("_", "-")
            written[f"{prefix}{role}_cert"] = _write_cert(directory / f"{stem}.pem", cert)
            written[f"{prefix}{role}_key"] = _write_key(directory / f"{stem}.key", key)
    return Certificates(directory=directory, **written)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    before, after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2)
    return builder.not_valid_before(before).not_valid_after(after)


def _authority(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(x509.CertificateBuilder())
    cert = (
        builder.subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(common_name: str, issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate,
          usage: x509.ObjectIdentifier, *, server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _validity(x509.CertificateBuilder())
        .subject_name(_name(common_name)).issuer_name(issuer.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(LOOPBACK_NAMES)), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path
