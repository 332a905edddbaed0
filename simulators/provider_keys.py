"""Credentials for the simulated wallets, made on the spot: what a merchant gets from WeChat Pay and Alipay.

``make_credentials(folder)`` writes, once (kept if already there):

- ``ca.pem``: a private CA standing for the providers' (the gateway's ``ca_file``);
- ``server.pem``/``server.key``: the providers' TLS certificate for 127.0.0.1;
- ``apiclient_cert.pem``/``apiclient_key.pem``: the WeChat Pay merchant's API certificate;
- ``wechatpay_api_key``: the merchant's 32-character API key;
- ``alipay_app_private_key``/``alipay_app_public_key``: the merchant's RSA2 key pair (the public half is
  what the merchant uploads to Alipay);
- ``alipay_private_key``/``alipay_public_key``: Alipay's own pair (the public half is what the merchant pins).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

APPID, MCH_ID, SUB_MCH_ID = "wx2421b1c4370ec43b", "10000100", "1900000109"
ALIPAY_APP_ID = "2021000000000001"


@dataclass(frozen=True)
class Credentials:
    folder: Path

    def __getattr__(self, name: str) -> Path:
        return self.folder / FILES[name]


FILES = {
    "ca": "ca.pem",
    "server_cert": "server.pem",
    "server_key": "server.key",
    "client_cert": "apiclient_cert.pem",
    "client_key": "apiclient_key.pem",
    "wechat_key": "wechatpay_api_key",
    "app_private": "alipay_app_private_key",
    "app_public": "alipay_app_public_key",
    "alipay_private": "alipay_private_key",
    "alipay_public": "alipay_public_key",
}


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_ca(now: datetime.datetime, days: int = 1) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "posgw test CA")])
    cert = (
        _valid(name, name, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    common_name: str,
    now: datetime.datetime,
    *,
    server: bool,
    days: int = 1,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate the CA signed: for 127.0.0.1 (``server``) or a merchant's client certificate."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = _valid(name, ca_cert.subject, key.public_key(), now, days)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_credentials(folder: Path, days: int = 30) -> Credentials:
    """Every credential of both simulated wallets under ``folder`` (made once; private files 0600)."""
    creds = Credentials(folder)
    if creds.alipay_public.exists():
        return creds
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = make_ca(now, days)
    server = issue(ca, "127.0.0.1", now, server=True, days=days)
    client = issue(ca, MCH_ID, now, server=False, days=days)
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alipay_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_cert(creds.ca, ca[1])
    write_cert(creds.server_cert, server[1])
    write_cert(creds.client_cert, client[1])
    secret_files = {
        creds.server_key: pem(server[0]),
        creds.client_key: pem(client[0]),
        creds.wechat_key: secrets.token_hex(16).encode(),
        creds.app_private: pem(app_key),
        creds.alipay_private: pem(alipay_key),
    }
    for path, data in secret_files.items():
        path.touch(mode=0o600)
        path.write_bytes(data)
    creds.app_public.write_bytes(public_pem(app_key))
    creds.alipay_public.write_bytes(public_pem(alipay_key))  # written last: its presence means "all made"
    return creds


def _valid(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
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


def server_tls(creds: Credentials) -> ssl.SSLContext:
    """The simulated providers' TLS: their certificate, and the merchant's client certificate asked for
    (optional at the handshake, as on WeChat Pay's host; its ``secapi`` calls refuse a connection without)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(creds.ca))
    context.load_cert_chain(str(creds.server_cert), str(creds.server_key))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def wechatpay_options(creds: Credentials, url: str, **extra: object) -> dict[str, object]:
    """The ``[payments.providers.options]`` of a merchant whose WeChat Pay is the simulator at ``url``."""
    return {
        "url": url,
        "appid": APPID,
        "mch_id": MCH_ID,
        "api_key_file": str(creds.wechat_key),
        "cert_file": str(creds.client_cert),
        "key_file": str(creds.client_key),
        "ca_file": str(creds.ca),
        **extra,
    }


def alipay_options(creds: Credentials, url: str, **extra: object) -> dict[str, object]:
    """The ``[payments.providers.options]`` of a merchant whose Alipay is the simulator at ``url``."""
    return {
        "url": url,
        "app_id": ALIPAY_APP_ID,
        "private_key_file": str(creds.app_private),
        "alipay_public_key_file": str(creds.alipay_public),
        "ca_file": str(creds.ca),
        **extra,
    }
