"""Who the customer is: member tokens verified offline against the ledger's rules.

The directory holds the rulebook and the member cache the ledger last sent,
and keeps a copy on disk so a terminal that restarts while the network is
down still knows its members. Until the first contact with the ledger it
runs on an empty rulebook: full prices, cash sales, no member discounts.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import MemberRefusedError, RulesUnavailableError, UnknownMemberError
from gateway.members.match import MemberMatch
from protocols.errors import GatewayError
from protocols.member_card import CardReading, verify_reading
from protocols.rulebook import (
    MemberEntry,
    Rulebook,
    RulebookRefusedError,
    members_from_wire,
    open_members,
    open_rulebook,
)
from protocols.tokens import key_id, public_key_from_text, public_key_text, verify_token

log = structlog.get_logger("posgw.membership")

EMPTY_RULEBOOK = Rulebook(0, "CNY", {}, frozenset(), {})


@dataclass
class MemberDirectory:
    rulebook: Rulebook = EMPTY_RULEBOOK
    members_version: int = 0
    # Coupon copies the mall withdrew (``<coupon id>:<instance>``), as last announced over MQTT.
    revoked_coupons: frozenset[str] = frozenset()
    members: dict[str, MemberEntry] | None = None
    _keys: dict[str, Ed25519PublicKey] | None = None

    _by_identifier: dict[str, MemberEntry] = field(default_factory=dict)
    pinned_key: str | None = None  # the ledger's rulebook key (base64url), from the config or first contact
    envelope: dict[str, Any] | None = None  # the signed rulebook in force, kept to re-check after a restart
    loaded_at: str = ""  # when the member snapshot was taken (ISO UTC); balances are as of then

    def update(self, rulebook: Rulebook, members_version: int, members: list[MemberEntry], loaded_at: str = "") -> None:
        self.rulebook = rulebook
        self._keys = rulebook.public_keys()
        self.members_version = members_version
        self.members = {m.member_id: m for m in members}
        self._by_identifier = {i: m for m in members for i in m.identifiers}
        self.loaded_at = loaded_at or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def accept_signed(self, envelope: object, members: object, loaded_at: str = "", *, delta: bool = False) -> Rulebook:
        """A signed rulebook and a signed member snapshot (or delta), both from the ledger's key."""
        pinned = public_key_from_text(self.pinned_key) if self.pinned_key else None
        _, key = open_rulebook(envelope, pinned)
        version, entries = open_members(members, key)
        return self.accept(envelope, version, entries, loaded_at, delta=delta)

    def accept(
        self,
        envelope: object,
        members_version: int,
        members: list[MemberEntry],
        loaded_at: str = "",
        *,
        delta: bool = False,
    ) -> Rulebook:
        """Take a signed rulebook (and the member snapshot with it), or refuse it and keep the old one."""
        pinned = public_key_from_text(self.pinned_key) if self.pinned_key else None
        book, key = open_rulebook(envelope, pinned)
        if self.envelope is not None and book.version < self.rulebook.version:
            raise RulebookRefusedError(
                f"rulebook v{book.version} is older than v{self.rulebook.version} in force; not going back"
            )
        if self.pinned_key is None:
            self.pinned_key = public_key_text(key)
            log.info("rulebook_key_pinned", kid=key_id(key))
        assert isinstance(envelope, dict)
        self.envelope = envelope
        if delta and self.members is not None:
            members = list({**self.members, **{m.member_id: m for m in members}}.values())
        self.update(book, members_version, members, loaded_at)
        return book

    def has_members(self) -> bool:
        """A member snapshot was taken (before the first contact with the ledger, none)."""
        return self.members is not None

    def member_count(self) -> int:
        return len(self.members or {})

    def learn(self, member: MemberEntry) -> None:
        """Remember a member found online, until the next snapshot."""
        if self.members is not None:
            self.members[member.member_id] = member
        self._by_identifier.update(dict.fromkeys(member.identifiers, member))

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Issuer keys for member tokens, coupons and cards; none before the first contact."""
        if not self._keys:
            raise RulesUnavailableError("codes cannot be checked yet: this terminal has not reached the ledger")
        return self._keys

    def verify_card(self, reading: CardReading, *, today: str) -> str:
        """Check a card reading offline; return the identifier to look up."""
        if not self._keys:
            raise RulesUnavailableError("member cards cannot be checked yet: this terminal has not reached the ledger")
        verify_reading(reading, self._keys, today)
        return reading.identifier

    def by_identifier(self, identifier: str) -> MemberEntry | None:
        return self._by_identifier.get(identifier)

    def identify_token(self, token: str, *, now: int, leeway: int) -> MemberMatch:
        """Verify a ``PM1.`` member QR code, or a ``PW1.`` wallet pay code, and find its member.

        A wallet code identifies its member in the same scan ("pay = member");
        paying from the stored value is the payments module's part.
        """
        if self.members is None or not self._keys:
            raise RulesUnavailableError("member codes cannot be checked yet: this terminal has not reached the ledger")
        prefix, via = ("PW1.", "wallet") if token.startswith("PW1.") else ("PM1.", "qr")
        claims = verify_token(token, prefix, self._keys, now=now, leeway=leeway)
        return MemberMatch(self.lookup(claims.subject), via, token_nonce=f"{claims.kid}:{claims.nonce}")

    def revoke_coupons(self, instances: list[str]) -> None:
        """The mall's current list of withdrawn coupon copies (it replaces the last one)."""
        self.revoked_coupons = frozenset(instances)

    def lookup(self, member_id: str) -> MemberEntry:
        member = (self.members or {}).get(member_id)
        if member is None:
            raise UnknownMemberError("this member is not known to the terminal; ask the customer to refresh the app")
        return check_active(member)

    def save(self, path: Path) -> None:
        """Write the cache atomically (temp file, fsync, rename)."""
        if self.members is None:
            return
        body = {
            "signed_rulebook": self.envelope,
            "pinned_key": self.pinned_key,
            "members": {"version": self.members_version, "members": [m.to_wire() for m in self.members.values()]},
            "loaded_at": self.loaded_at,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        """Load the cache left by a previous run; a damaged cache is reported and ignored."""
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            version, members = members_from_wire(body.get("members"), f"{path} members")
            if self.pinned_key is None:
                self.pinned_key = body.get("pinned_key") or None
            # Checked again, against the pinned key: a cache file edited on disk is refused.
            self.accept(body.get("signed_rulebook"), version, members, str(body.get("loaded_at") or "1970-01-01"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError, AttributeError, GatewayError) as err:
            log.warning("member_cache_unreadable", path=str(path), error=str(err))
            return False
        return True


def check_active(member: MemberEntry) -> MemberEntry:
    if member.status != "active":
        raise MemberRefusedError(f"membership is {member.status}; member benefits cannot be given")
    return member


class IdentifierLookup(Protocol):
    """The ledger, asked for an identifier the cache does not know (``LedgerClient``)."""

    async def lookup_identifier(self, identifier: str) -> MemberEntry | None: ...


async def resolve(directory: MemberDirectory, client: IdentifierLookup, identifier: str, unknown: str) -> MemberEntry:
    """The member behind an identifier: from the cache, else asked of the ledger (and remembered)."""
    member = directory.by_identifier(identifier)
    if member is None:
        started = time.perf_counter()
        member = await client.lookup_identifier(identifier)
        log.info(
            "identifier_looked_up_online",
            kind=identifier.split(":")[0],
            found=member is not None,
            ms=round((time.perf_counter() - started) * 1000),
        )
        if member is None:
            raise UnknownMemberError(unknown)
        directory.learn(member)
    return member
