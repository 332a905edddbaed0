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

import json
import tomllib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.database import Tx, marks
from ledger.tiers import Ladder
from protocols.errors import FinalError, SchemaError
from protocols.rulebook import Rulebook
from protocols.tokens import key_id, public_key_text

OWN_FIELDS = ("phone_salt", "issuer_keys")  # filled in by the ledger, never loaded


class RulebookRefusedError(FinalError):
    """A rulebook file that cannot be loaded: unreadable, not newer, or carrying the ledger's own fields."""

    code = "rulebook-refused"


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
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
