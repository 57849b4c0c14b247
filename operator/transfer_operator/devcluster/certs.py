"""Certificates for the dev control plane: CA, apiserver serving cert, admin client cert,
front-proxy client cert and the service-account signing key pair. EC P-256 keys: fast to
generate."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY_DAYS = 365
SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", "10.96.0.1")
FRONT_PROXY_CLIENT_NAME = "front-proxy-client"


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    front_proxy_cert: Path
    front_proxy_key: Path
    sa_public_key: Path
    sa_private_key: Path


def cert_paths(cert_dir: Path) -> CertPaths:
    return CertPaths(
        ca_cert=cert_dir / "ca.crt",
        ca_key=cert_dir / "ca.key",
        serving_cert=cert_dir / "apiserver.crt",
        serving_key=cert_dir / "apiserver.key",
        admin_cert=cert_dir / "admin.crt",
        admin_key=cert_dir / "admin.key",
        front_proxy_cert=cert_dir / "front-proxy-client.crt",
        front_proxy_key=cert_dir / "front-proxy-client.key",
        sa_public_key=cert_dir / "sa.pub",
        sa_private_key=cert_dir / "sa.key",
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    builder = (
        _builder(subject, ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def generate(cert_dir: Path) -> CertPaths:
    """Write a fresh set of certificates and keys into cert_dir."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = cert_paths(cert_dir)

    ca_key = _new_key()
    ca_name = _name("transfer-operator-dev-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.ca_key, _key_pem(ca_key), private=True)

    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVING_DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    serving_cert, serving_key = _issue(
        ca_key, ca_name, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans
    )
    _write(paths.serving_cert, serving_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.serving_key, _key_pem(serving_key), private=True)

    admin_cert, admin_key = _issue(
        ca_key,
        ca_name,
        _name("kubernetes-admin", "system:masters"),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _write(paths.admin_cert, admin_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.admin_key, _key_pem(admin_key), private=True)

    # Lets the apiserver authenticate to aggregated APIs and fills the requestheader CA that
    # controller-manager and scheduler otherwise complain about every few seconds.
    proxy_cert, proxy_key = _issue(
        ca_key, ca_name, _name(FRONT_PROXY_CLIENT_NAME), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    _write(paths.front_proxy_cert, proxy_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.front_proxy_key, _key_pem(proxy_key), private=True)

    sa_key = _new_key()
    _write(paths.sa_private_key, _key_pem(sa_key), private=True)
    _write(
        paths.sa_public_key,
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return paths
