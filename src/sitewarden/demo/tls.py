"""A local certificate authority and a server certificate for ``sitewarden demo --https``.

Files under ``<state-dir>/tls/`` (the directory is ``0700``, private keys ``0600``)::

    ca.pem          the CA certificate: trust this one (browser, NODE_EXTRA_CA_CERTS, httpx)
    ca-key.pem      the CA's private key (kept to renew the server certificate)
    server.pem      the server certificate (127.0.0.1, ::1, localhost)
    server-key.pem  the server's private key

Both certificates last about a year and are reused on later runs, so the CA has to be
trusted only once; one that expires within :data:`RENEW_BEFORE` is replaced (a new CA
must be trusted again — the command says so).

**The CA can only vouch for this machine.** Its certificate carries a critical *name
constraints* extension permitting only ``localhost`` and the loopback addresses: even if
its private key leaked, it could not be used to impersonate any other site to a browser
that trusts it. Keys are ECDSA P-256 and certificates are signed with SHA-256.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "RENEW_BEFORE",
    "SERVER_NAMES",
    "VALIDITY",
    "TlsFiles",
    "ensure_tls",
]

#: How long new certificates are valid.
VALIDITY = datetime.timedelta(days=365)
#: A certificate that expires sooner than this is replaced.
RENEW_BEFORE = datetime.timedelta(days=30)
#: The names the server certificate is for.
SERVER_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_network("::1/128")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the certificate files are, and what :func:`ensure_tls` had to create."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    #: True when the CA was created now (it must be trusted, again if it existed before).
    created_ca: bool
    #: True when the server certificate was (re)issued now.
    created_cert: bool


def ensure_tls(directory: str | os.PathLike[str]) -> TlsFiles:
    """Create (or reuse) the local CA and the server certificate under *directory*."""
    tls = Path(directory)
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    ca_cert_path, ca_key_path = tls / "ca.pem", tls / "ca-key.pem"
    cert_path, key_path = tls / "server.pem", tls / "server-key.pem"
    now = datetime.datetime.now(datetime.UTC)

    ca = _load_pair(ca_cert_path, ca_key_path)
    created_ca = ca is None or not _fresh(ca[0], now) or not _is_our_ca(ca[0])
    if ca is None or created_ca:
        ca = _new_ca(now)
        _write_private(ca_key_path, _key_pem(ca[1]))
        _write_public(ca_cert_path, ca[0].public_bytes(serialization.Encoding.PEM))
    ca_cert, ca_key = ca

    server = None if created_ca else _load_pair(cert_path, key_path)
    created_cert = server is None or not _server_ok(server[0], ca_cert, now)
    if created_cert:
        cert, key = _new_server(ca_cert, ca_key, now)
        _write_private(key_path, _key_pem(key))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(tls, ca_cert_path, ca_key_path, cert_path, key_path, created_ca, created_cert)


# -- checks ----------------------------------------------------------------------------


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """Load a certificate and its key; ``None`` if missing, unreadable or not a pair."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return None
    if (key_path.stat().st_mode & 0o077) != 0:
        os.chmod(key_path, 0o600)  # tighten a key file someone loosened
    return cert, key


def _fresh(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _is_our_ca(cert: x509.Certificate) -> bool:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return basic.ca


def _server_ok(cert: x509.Certificate, ca: x509.Certificate, now: datetime.datetime) -> bool:
    """Whether *cert* is fresh, issued by *ca* and names every one of :data:`SERVER_NAMES`."""
    if not _fresh(cert, now):
        return False
    try:
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    names = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    names |= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return all(name in names for name in SERVER_NAMES)


# -- creation --------------------------------------------------------------------------


def _new_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    stamp = now.strftime("%Y-%m-%d")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sitewarden demo"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"sitewarden demo local CA {socket.gethostname()[:20]} {stamp}"
            ),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
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
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName("localhost"),
                    x509.IPAddress(_LOOPBACK_V4),
                    x509.IPAddress(_LOOPBACK_V6),
                ],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in SERVER_NAMES:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sitewarden demo"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + VALIDITY, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


# -- files -----------------------------------------------------------------------------


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write *data* to *path* atomically; the file is ``0600`` from its creation on."""
    _write(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _write(path, data, 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left over by a crash
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits, never added: set exactly
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
