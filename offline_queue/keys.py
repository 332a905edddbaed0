"""The terminal's signing key: made on first start, kept with mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from offline_queue.errors import JournalKeyError


def load_or_create_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """Load the PEM key at ``path``; create it (0600, exclusive) when absent and ``create``."""
    if not path.exists() and not create:
        raise JournalKeyError(f"no terminal key at {path}: the journal's signatures cannot be checked without it")
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise JournalKeyError(f"{path} is readable by others (mode {path.stat().st_mode & 0o777:o}); chmod 600 it")
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as err:
            raise JournalKeyError(f"{path} is not a readable private key: {err}") from err
        if not isinstance(key, Ed25519PrivateKey):
            raise JournalKeyError(f"{path} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        fh.flush()
        os.fsync(fh.fileno())
    return key
