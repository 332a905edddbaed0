"""Personal data at rest: AES-256-GCM with a keyring that supports rotation.

Keys come from a key file (mode 0600) or an environment variable, one per line
as ``<key id>:<base64url of 32 bytes>``; the first line encrypts, every line
decrypts. To rotate, put a new key first and keep the old ones until no stored
record uses them (``posgw journal status`` lists the key ids in use).
Ciphertexts are ``<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``, bound to
their record by the AES-GCM associated data.
"""

from __future__ import annotations

import base64
import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from offline_queue.errors import JournalKeyError

_LINE = re.compile(r"([A-Za-z0-9_-]{1,32}):([A-Za-z0-9_-]{43}=?)")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_key_line() -> str:
    """A fresh key line for a key file (``posgw journal new-key``)."""
    return f"k{secrets.token_hex(4)}:{_b64e(AESGCM.generate_key(bit_length=256))}"


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise JournalKeyError("the personal-data keyring is empty")
        self.current = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    @classmethod
    def from_text(cls, text: str, source: str) -> Keyring:
        keys = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.fullmatch(line)
            if match is None:
                raise JournalKeyError(f"{source} line {n}: expected <key id>:<base64url of 32 bytes>")
            keys.append((match.group(1), _b64d(match.group(2))))
        return cls(keys)

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(12)
        return f"{self.current}.{_b64e(nonce + self._keys[self.current].encrypt(nonce, plaintext, aad))}"

    def decrypt(self, token: str, aad: bytes) -> bytes:
        kid, _, body = token.partition(".")
        aead = self._keys.get(kid)
        if aead is None:
            raise JournalKeyError(f"personal data was encrypted with key {kid!r}, which is not in the keyring")
        raw = _b64d(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], aad)
        except InvalidTag as err:
            raise JournalKeyError(
                f"key {kid!r} does not decrypt this record: wrong key, or the data was altered"
            ) from err
