"""Certificates and keys of the local control plane.

A real cluster has its parts prove who they are to each other with X.509 certificates issued
by one cluster CA, and it signs service account tokens with a key pair of its own.  The local
control plane does the same instead of letting anonymous or static-token users in, so that
what the operator meets in tests is what it meets in production: RBAC decides by the user and
the groups in a client certificate, TokenRequest mints real signed tokens, and every client
verifies the API server's serving certificate against the CA.

Everything is generated afresh for each cluster and written into one folder; nothing is
shared between clusters or kept across runs, so a stale or leaked key cannot outlive the
cluster it belongs to.

A second, separate CA signs only the front proxy's client certificate, with which the API
server vouches for a user when it forwards a request to an aggregated API server, and which
the controller manager expects to find configured.  Were it the cluster CA, every client
certificate of the cluster would be trusted to assert any user name in a header.

Two choices look odd at first sight:

1. The CA, the serving certificate and the client certificates use ECDSA P-256 keys: every
   Kubernetes component accepts them, and generating one takes well under a millisecond,
   where an RSA key takes tens of milliseconds, which adds up when tests start many clusters.
2. The service account signing key is RSA nonetheless.  The API server would sign with an EC
   key too, but RS256 is the one algorithm that every token verifier is required to support
   (OpenID Connect discovery mandates it), so tokens from this cluster work with any of them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "CONTROLLER_MANAGER_USER",
    "FRONT_PROXY_USER",
    "ClusterCertificates",
    "KeyPair",
    "certificate_paths",
    "write_cluster_certificates",
]

ADMIN_USER = "hardening-admin"
"""The user of the admin kubeconfig; RBAC lets it do anything through ``ADMIN_GROUP``."""

ADMIN_GROUP = "system:masters"
"""The group that the API server's RBAC authorizer lets through unconditionally."""

CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
"""The user that the bootstrap RBAC policy binds to the controller manager's role."""

FRONT_PROXY_USER = "front-proxy-client"
"""The name in the front proxy's client certificate, the one the API server allows to
assert users in request headers."""

DEFAULT_VALIDITY = datetime.timedelta(days=365)
"""How long the certificates are valid: a year, far longer than any local cluster lives."""

_BACKDATING = datetime.timedelta(hours=1)
"""How far into the past certificates start to be valid, so that a clock that is a little
behind (a container, a suspended laptop) does not see them as not yet valid."""

_SERVING_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
"""DNS names that the API server answers to: its loopback name, and the names by which pods
reach it through the ``kubernetes`` Service in a real cluster."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, each a PEM file."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterCertificates:
    """The files of one cluster's public key infrastructure, all in one folder."""

    folder: Path
    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    service_account_public_key: Path
    service_account_private_key: Path


def certificate_paths(folder: Path) -> ClusterCertificates:
    """Name the files of a cluster's certificates in ``folder``, without creating any."""
    return ClusterCertificates(
        folder=folder,
        ca=KeyPair(cert=folder / "ca.crt", key=folder / "ca.key"),
        apiserver=KeyPair(cert=folder / "kube-apiserver.crt", key=folder / "kube-apiserver.key"),
        admin=KeyPair(cert=folder / "admin.crt", key=folder / "admin.key"),
        controller_manager=KeyPair(
            cert=folder / "kube-controller-manager.crt",
            key=folder / "kube-controller-manager.key",
        ),
        front_proxy_ca=KeyPair(
            cert=folder / "front-proxy-ca.crt",
            key=folder / "front-proxy-ca.key",
        ),
        front_proxy_client=KeyPair(
            cert=folder / "front-proxy-client.crt",
            key=folder / "front-proxy-client.key",
        ),
        service_account_public_key=folder / "service-account.pub",
        service_account_private_key=folder / "service-account.key",
    )


def write_cluster_certificates(
    folder: Path,
    *,
    service_ip: str,
    validity: datetime.timedelta = DEFAULT_VALIDITY,
) -> ClusterCertificates:
    """Generate a new CA and everything it signs, and write it all into ``folder``.

    ``service_ip`` is the cluster IP of the ``kubernetes`` Service (the first address of the
    service range); it goes into the serving certificate so that in-cluster clients would
    accept it.  Private keys are written readable by the owner only.
    """
    paths = certificate_paths(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _self_signed_ca(ca_key, common_name="hardening-operator-local-ca", now=now,
                              validity=validity)
    _write_certificate(paths.ca.cert, ca_cert)
    _write_private_key(paths.ca.key, ca_key)

    serving_names: list[x509.GeneralName] = [x509.DNSName(name) for name in _SERVING_NAMES]
    serving_names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(service_ip)),
    ]
    _issue(
        paths.apiserver,
        ca_cert=ca_cert,
        ca_key=ca_key,
        subject=_name(common_name="kube-apiserver"),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alternative_names=serving_names,
        now=now,
        validity=validity,
    )
    _issue(
        paths.admin,
        ca_cert=ca_cert,
        ca_key=ca_key,
        subject=_name(common_name=ADMIN_USER, organizations=[ADMIN_GROUP]),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=validity,
    )
    _issue(
        paths.controller_manager,
        ca_cert=ca_cert,
        ca_key=ca_key,
        subject=_name(common_name=CONTROLLER_MANAGER_USER),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=validity,
    )

    proxy_ca_key = ec.generate_private_key(ec.SECP256R1())
    proxy_ca_cert = _self_signed_ca(proxy_ca_key, common_name="hardening-operator-front-proxy-ca",
                                    now=now, validity=validity)
    _write_certificate(paths.front_proxy_ca.cert, proxy_ca_cert)
    _write_private_key(paths.front_proxy_ca.key, proxy_ca_key)
    _issue(
        paths.front_proxy_client,
        ca_cert=proxy_ca_cert,
        ca_key=proxy_ca_key,
        subject=_name(common_name=FRONT_PROXY_USER),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=validity,
    )

    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private_key(paths.service_account_private_key, signing_key)
    paths.service_account_public_key.write_bytes(
        signing_key.public_key().public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return paths


def _name(*, common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    # Kubernetes reads the user from CN and the groups from every O of a client certificate.
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _self_signed_ca(
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> x509.Certificate:
    subject = _name(common_name=common_name)
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATING)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _issue(
    target: KeyPair,
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    alternative_names: Sequence[x509.GeneralName] = (),
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> None:
    """Issue a leaf certificate for a new key, and write both into ``target``."""
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATING)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # An ECDSA key only signs the handshake; it never enciphers a key, so
            # digital_signature is the one usage it needs, for clients and servers alike.
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(alternative_names)), critical=False
        )
    _write_certificate(target.cert, builder.sign(ca_key, hashes.SHA256()))
    _write_private_key(target.key, key)


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_private_key(
    path: Path,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> None:
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    # Created with owner-only permissions, so that the key is not readable by others even for
    # an instant; fchmod covers a file that already existed with wider ones.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
