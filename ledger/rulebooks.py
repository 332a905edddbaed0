"""Rulebook versions at the ledger: an operator loads one, the ledger signs and serves it.

An operator loads a rulebook (tiers, benefits, coupons, risk limits) from a
JSON or TOML file: it is read through the same schema terminals apply, must
carry a newer ``version`` than the one in force, and is kept with its
SHA-256 beside every earlier version. The ledger adds what is its own (the
mall's phone salt, its issuer key) and signs what it serves; a running
ledger notices a new version within :data:`POLL_SECONDS`, serves it and
announces it over MQTT.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.database import Database, Tx, marks
from ledger.tiers import Ladder
from protocols.errors import FinalError, SchemaError
from protocols.rulebook import Rulebook
from protocols.tokens import b64url_encode, key_id, public_key_text
from protocols.untrusted_json import read_json

OWN_FIELDS = ("phone_salt", "issuer_keys")  # filled in by the ledger, never loaded


class RulebookRefusedError(FinalError):
    """A rulebook file that cannot be loaded: unreadable, not newer, or carrying the ledger's own fields."""

    code = "rulebook-refused"


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else read_json(text, str(path), max_bytes=16 * 1024 * 1024)
    except (OSError, ValueError) as err:  # tomllib.TOMLDecodeError and json's errors are ValueErrors
        raise RulebookRefusedError(f"{path}: {err}") from err
    if not isinstance(data, dict):
        raise RulebookRefusedError(f"{path}: expected a table of rules, got {type(data).__name__}")
    if own := [name for name in OWN_FIELDS if name in data]:
        raise RulebookRefusedError(f"{path}: {', '.join(own)} are the ledger's own; leave them out")
    return data


def assemble(body: dict[str, Any], phone_salt: str, issuer: Ed25519PrivateKey) -> Rulebook:
    """The rulebook terminals get: the loaded body, the mall's phone salt and the ledger's issuer key.

    Raises :class:`SchemaError` naming every problem of a body that is not a rulebook.
    """
    public = issuer.public_key()
    wire = {**body, "phone_salt": phone_salt, "issuer_keys": {key_id(public): public_key_text(public)}}
    return Rulebook.from_wire(wire, "rulebook")


EMPTY = Rulebook(0, "CNY", {}, frozenset(), {})  # what a terminal that never had rules priced by


class Shelf:
    """Every rulebook version the ledger issued, by number (records are re-checked by the one they name),
    and the one in force (its tier ladder and the mall's time zone)."""

    def __init__(self, in_force: Rulebook = EMPTY) -> None:
        self.in_force = in_force
        self.ladder = Ladder.of(in_force)
        self._versions: dict[int, Rulebook] = {0: EMPTY, in_force.version: in_force}

    @property
    def zone(self) -> str:
        return self.in_force.zone

    def get(self, version: int) -> Rulebook | None:
        return self._versions.get(version)

    async def load(self, tx: Tx, versions: set[int]) -> None:
        """Read the versions not on the shelf yet (each is immutable once issued)."""
        missing = sorted(v for v in versions if v not in self._versions)
        if not missing:
            return
        for version, body in await tx.all(
            f"SELECT version, body FROM rulebooks WHERE version IN ({marks(len(missing))})",  # noqa: S608
            *missing,
        ):
            try:  # the ledger's own fields do not change what a record earns
                book = Rulebook.from_wire({**json.loads(body), "phone_salt": "", "issuer_keys": {}})
            except SchemaError:
                continue  # unreadable by this version: records naming it are quarantined, not guessed at
            self._versions[int(version)] = book


class RuleBook:
    """The store's facet for rulebook versions (``store.rules``): loaded, kept, and the shelf in force."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.shelf = Shelf()  # the rulebooks records are re-checked by, and the one in force (set by the service)

    def use(self, book: Rulebook) -> None:
        """Put ``book`` in force for ingest, the yearly jobs and reports; earlier versions stay on the shelf."""
        self.shelf = Shelf(book)

    async def phone_salt(self) -> str:
        """The mall's salt for hashing phone numbers and payer ids (made once, on first use; base64url)."""
        fresh = json.dumps(b64url_encode(os.urandom(16)))

        async def salt(tx: Tx) -> str:
            await tx.run("INSERT INTO meta VALUES ('phone_salt', $1) ON CONFLICT (key) DO NOTHING", fresh)
            row = await tx.one("SELECT value FROM meta WHERE key = 'phone_salt'")
            return str(json.loads(row[0])) if row else ""

        return await self.db.write(salt)

    async def add(self, body: dict[str, Any]) -> tuple[int, str]:
        """Put a rulebook version in force, kept beside the earlier ones; (version, SHA-256 of its text).

        Raises :class:`RulebookRefusedError` unless it is newer than the one in force.
        """
        text = json.dumps(body, sort_keys=True, ensure_ascii=False)
        digest, version = hashlib.sha256(text.encode()).hexdigest(), int(body["version"])

        async def add(tx: Tx) -> tuple[int, str]:
            row = await tx.one("SELECT value FROM meta WHERE key = 'rulebook'")
            current = int(json.loads(row[0])["version"]) if row else 0
            if version <= current:
                raise RulebookRefusedError(f"version {version} is not newer than version {current}, in force")
            await tx.run(
                "INSERT INTO rulebooks (version, body, sha256, loaded_at) VALUES ($1, $2, $3, $4)",
                version,
                text,
                digest,
                datetime.now(UTC).isoformat(),
            )
            await tx.run(
                "INSERT INTO meta VALUES ('rulebook', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", text
            )
            return version, digest

        return await self.db.write(add)

    async def versions(self) -> list[tuple[int, str, str]]:
        """Every version loaded: (version, SHA-256, loaded at), oldest first."""
        rows = await self.db.read(
            lambda tx: tx.all("SELECT version, sha256, loaded_at FROM rulebooks ORDER BY version")
        )
        return [(int(v), str(d), str(at)) for v, d, at in rows]
