"""The ledger's secrets belong to the ledger, not to one node: kept in its database, sealed.

The issuer key (it signs rulebooks, member snapshots and every member, wallet
and coupon code terminals verify offline) lives in the ``secrets`` table,
sealed with AES-256-GCM under the *secrets key*: 32 bytes, base64url, from
``--secrets-key-file`` or ``$POSGW_LEDGER_SECRETS_KEY`` — the same on every
node. A single-shop ledger that names none gets one made in its data
directory (``secrets.key``, 0600). Every node that starts finds the one
issuer key already there, or makes it: two nodes starting together on an
empty database both insert theirs if absent and then both read the one that
won. A node whose secrets key cannot open the database's, or whose own
``issuer.key`` file (from before) differs from the ledger's, refuses to start
with one clear line, rather than sign with a key every till would refuse.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from ledger.database import Database, Tx
from protocols.errors import FinalError
from protocols.tokens import b64url_decode, b64url_encode

KEY_ENV = "POSGW_LEDGER_SECRETS_KEY"
KEY_FILE = "secrets.key"
LEGACY_ISSUER_FILE = "issuer.key"


class SecretsError(FinalError):
    """The ledger's secrets cannot be opened with this node's key, or disagree with a file of this node's."""

    code = "ledger-secrets"


def secrets_key(data_dir: Path, key_file: Path | None = None, env: dict[str, str] | None = None) -> bytes:
    """The secrets key: from the file named, else the environment, else this data directory's (made once)."""
    env = dict(os.environ) if env is None else env
    if key_file is not None:
        try:
            return _read_key(key_file.read_text().strip(), str(key_file))
        except OSError as err:
            raise SecretsError(f"cannot read the secrets key {key_file}: {err.strerror}") from err
    if env.get(KEY_ENV):
        return _read_key(env[KEY_ENV].strip(), f"${KEY_ENV}")
    path = data_dir / KEY_FILE
    if not path.exists():
        _make_key_file(path)
    return _read_key(path.read_text().strip(), str(path))


def _make_key_file(path: Path) -> None:
    """A new key, whole or not at all: written aside and linked into place, so a node (or ``--workers``
    worker) starting at the same moment reads either none or this one, never half; the first link wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(b64url_encode(AESGCM.generate_key(bit_length=256)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another made it first: that one is the key
            os.link(aside, path)
    finally:
        aside.unlink()
    folder = os.open(path.parent, os.O_RDONLY)
    try:  # the name on disk too: a key lost to a power cut would leave the ledger's sealed issuer key unopenable
        os.fsync(folder)
    finally:
        os.close(folder)


def _read_key(text: str, where: str) -> bytes:
    try:
        key = b64url_decode(text)
    except ValueError as err:
        raise SecretsError(f"the secrets key in {where} is not base64url") from err
    if len(key) != 32:
        raise SecretsError(f"the secrets key in {where} is {len(key)} bytes, not 32")
    return key


def seal(key: bytes, name: str, value: bytes) -> str:
    nonce = os.urandom(12)
    return b64url_encode(nonce + AESGCM(key).encrypt(nonce, value, name.encode()))


def unseal(key: bytes, name: str, text: str) -> bytes:
    raw = b64url_decode(text)
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], name.encode())
    except InvalidTag as err:
        raise SecretsError(
            f"the ledger's {name} key cannot be opened with this node's secrets key: give every node the same "
            f"--secrets-key-file or ${KEY_ENV}"
        ) from err


async def issuer_key(db: Database, data_dir: Path, key: bytes) -> Ed25519PrivateKey:
    """The ledger's one issuer key: from the database, else this node's old ``issuer.key``, else made now."""
    legacy = data_dir / LEGACY_ISSUER_FILE
    offered = _pem_key(legacy.read_bytes(), legacy) if legacy.exists() else Ed25519PrivateKey.generate()
    pem = offered.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    sealed = seal(key, "issuer", pem)

    async def settle(tx: Tx) -> str:
        await tx.run(
            "INSERT INTO secrets (name, value, created_at) VALUES ('issuer', $1, $2) ON CONFLICT (name) DO NOTHING",
            sealed,
            datetime.now(UTC).isoformat(),
        )
        row = await tx.one("SELECT value FROM secrets WHERE name = 'issuer'")
        assert row is not None
        return str(row[0])

    issuer = _pem_key(unseal(key, "issuer", await db.write(settle)), Path("the ledger's database"))
    if legacy.exists() and _public(issuer) != _public(offered):
        raise SecretsError(
            f"{legacy} holds another issuer key than the ledger's: this node was set up for another ledger; "
            "move the file away (the ledger's own key is in its database)"
        )
    return issuer


def _pem_key(pem: bytes, where: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretsError(f"{where} is not an Ed25519 private key")
    return key


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_secrets_key() -> str:
    """A secrets key line, for ``--secrets-key-file`` (``posgw-ledger secrets new-key``)."""
    return b64url_encode(AESGCM.generate_key(bit_length=256))
