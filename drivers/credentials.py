"""A payment provider's credentials: secrets, keys and client certificates, from files or the environment.

Each secret ``<what>`` is read from the file ``<what>_file`` names or, without
one, from the environment variable ``<what>_env`` names; it is never part of
the config text, never logged, never shown by ``repr``. Problems (no such
file, a key that does not parse, a certificate that has expired) are config
problems, so ``posgw config check`` reports them with the rest.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from protocols.schema import Fields


@dataclass(frozen=True)
class Secret:
    """A secret value that does not print."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "<secret>"


def secret(f: Fields, what: str, default_env: str, *, min_len: int = 1) -> Secret:
    """``<what>`` from ``<what>_file`` or the environment variable ``<what>_env`` names (``default_env``)."""
    value = read_secret(f, what, default_env)
    if value and len(value) < min_len:
        f.problems.add(f"{f.path}.{what}", f"the {what} must be at least {min_len} characters")
    return Secret(value)


def read_secret(f: Fields, what: str, default_env: str, env: Mapping[str, str] | None = None) -> str:
    """``<what>`` from the file ``<what>_file`` names or the variable ``<what>_env`` names (``default_env``) in
    ``env`` (default: this process's environment); every problem named in ``f``'s problems."""
    file_key, env_key = f"{what}_file", f"{what}_env"
    path = f.file_path(file_key, "")
    var = f.text(env_key, default_env, pattern=r"[A-Z_][A-Z0-9_]*")
    if path:
        try:
            value = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            f.problems.add(f"{f.path}.{file_key}", f"cannot read {path}: {getattr(err, 'strerror', None) or err}")
            return ""
    else:
        value = (os.environ if env is None else env).get(var, "").strip()
    if not value:
        f.problems.add(f"{f.path}.{what}", f"no {what}: set {file_key} or the environment variable {var}")
    return value


def _der(text: str) -> bytes | None:
    """A key as the wallets' tools print it: base64 DER on one line, without PEM armour."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def rsa_private_key(f: Fields, what: str, default_env: str) -> rsa.RSAPrivateKey | None:
    """An RSA private key (PEM, or bare base64 PKCS#8/PKCS#1 DER) of at least 2048 bits."""
    key = _load(f, what, default_env, "private", lambda pem: serialization.load_pem_private_key(pem, None),
                lambda der: serialization.load_der_private_key(der, None))  # fmt: skip
    return key if isinstance(key, rsa.RSAPrivateKey) and _big_enough(f, what, key) else None


def rsa_public_key(f: Fields, what: str, default_env: str) -> rsa.RSAPublicKey | None:
    """An RSA public key (PEM, or bare base64 SubjectPublicKeyInfo DER) of at least 2048 bits."""
    key = _load(f, what, default_env, "public", serialization.load_pem_public_key, serialization.load_der_public_key)
    return key if isinstance(key, rsa.RSAPublicKey) and _big_enough(f, what, key) else None


def _load(
    f: Fields, what: str, default_env: str, half: str, from_pem: Callable[[bytes], object],
    from_der: Callable[[bytes], object],
) -> object:  # fmt: skip
    text = read_secret(f, what, default_env)
    if not text:
        return None
    try:
        key = from_pem(text.encode()) if text.startswith("-----BEGIN") else from_der(_der(text) or b"")
    except (ValueError, TypeError) as err:
        f.problems.add(f"{f.path}.{what}", f"not an RSA {half} key: {type(err).__name__}")
        return None
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        f.problems.add(f"{f.path}.{what}", "not an RSA key (RSA2 needs RSA)")
        return None
    return key


def _big_enough(f: Fields, what: str, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bool:
    if key.key_size < 2048:
        f.problems.add(f"{f.path}.{what}", f"a {key.key_size}-bit key; RSA2 needs at least 2048 bits")
        return False
    return True


def tls_contexts(f: Fields, *, client_cert: bool, now: datetime | None = None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The TLS contexts for a provider: both check its server against ``ca_file`` or the system's CAs; the
    second, with ``client_cert``, also presents the merchant's API certificate (``cert_file``, ``key_file``),
    checked unexpired. Every problem is named once."""
    ca_file = f.file_path("ca_file", "") or None
    try:
        plain, secure = ssl.create_default_context(cafile=ca_file), ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as err:
        f.problems.add(f"{f.path}.ca_file", f"cannot use {ca_file}: {err}")
        plain, secure = ssl.create_default_context(), ssl.create_default_context()
    if client_cert:
        _present_certificate(f, secure, now or datetime.now(UTC))
    return plain, secure


def _present_certificate(f: Fields, context: ssl.SSLContext, today: datetime) -> None:
    cert_file, key_file = f.file_path("cert_file", ""), f.file_path("key_file", "")
    if not cert_file or not key_file:
        f.problems.add(f"{f.path}.cert_file", "the merchant's API certificate (cert_file and key_file) is required")
        return
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ValueError, ssl.SSLError) as err:
        f.problems.add(f"{f.path}.cert_file", f"cannot use {cert_file} with {key_file}: {err}")
        return
    if cert.not_valid_after_utc <= today:
        f.problems.add(f"{f.path}.cert_file", f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    elif cert.not_valid_before_utc > today:
        starts = f"{cert.not_valid_before_utc:%Y-%m-%d}"
        f.problems.add(f"{f.path}.cert_file", f"the certificate is not valid before {starts}")
