"""Private Mosquitto brokers for tests: accounts, TLS with a CA made on the spot, the shipped ACL."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ACL = Path(__file__).resolve().parent.parent / "config" / "mosquitto" / "posgw.acl"


def start_broker(conf: Path) -> subprocess.Popen[bytes]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def broker_with_account(tmp_path: Path, port: int, user: str, password: str) -> Path:
    return broker_conf(tmp_path, port, {user: password})


def broker_conf(
    tmp_path: Path, port: int, accounts: dict[str, str], *, tls: Path | None = None, acl: bool = False
) -> Path:
    """A broker refusing anonymous clients; ``tls``: a folder from :func:`make_tls`; ``acl``: the shipped ACL."""
    passwords = tmp_path / "passwords"
    for n, (user, password) in enumerate(accounts.items()):
        create = ["-c"] if n == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), user, password], check=True)
    # As root, mosquitto would switch to its own user, who cannot read pytest's private temp folder.
    lines = ["user root"] if os.geteuid() == 0 else []
    lines += [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwords}", "persistence false"]
    if tls is not None:
        lines += [f"cafile {tls / 'ca.pem'}", f"certfile {tls / 'server.pem'}", f"keyfile {tls / 'server.key'}"]
    if acl:
        lines.append(f"acl_file {ACL}")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def make_tls(folder: Path) -> Path:
    """A CA (``ca.pem``) and a certificate it signed for 127.0.0.1 (``server.pem``, ``server.key``)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "posgw test CA")])
    ca = (
        _valid(x509.CertificateBuilder(), now, ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    server = (
        _valid(x509.CertificateBuilder(), now, server_name, ca_name, server_key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder


def _valid(
    builder: x509.CertificateBuilder,
    now: datetime.datetime,
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePublicKey,
) -> x509.CertificateBuilder:
    return (
        builder.subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
