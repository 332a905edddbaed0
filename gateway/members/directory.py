"""Who the customer is: member tokens verified offline against the ledger's rules.

The directory holds the rulebook and the member cache the ledger last sent,
and keeps a copy on disk so a terminal that restarts while the network is
down still knows its members. Until the first contact with the ledger it
runs on an empty rulebook: full prices, cash sales, no member discounts.
"""

from __future__ import annotations

import contextlib
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
from protocols.revocations import apply as apply_revocations
from protocols.revocations import open_revocations
from protocols.rulebook import MemberEntry, Rulebook, RulebookRefusedError, open_members, open_rulebook
from protocols.tokens import public_key_from_text, verify_token
from protocols.untrusted_json import read_json

log = structlog.get_logger("posgw.membership")

EMPTY_RULEBOOK = Rulebook(0, "CNY", {}, frozenset(), {})


MAX_CACHE_BYTES = 512 * 1024 * 1024  # a mall's member list and revocations, with room to grow
CACHE_FORMAT = 2  # the signed snapshot and the signed deltas, as the ledger sent them
MAX_DELTAS = 32  # beyond this many kept deltas, the next refresh asks for a full snapshot


class NotEnrolledError(RulebookRefusedError):
    """No ledger key is pinned on this till: nothing the ledger sends can be believed yet."""

    code = "not-enrolled"


@dataclass
class MemberDirectory:
    rulebook: Rulebook = EMPTY_RULEBOOK
    members_version: int = 0
    # Coupon copies the mall withdrew (``<coupon id>:<instance>``): the ledger's signed list, at its version.
    revoked_coupons: frozenset[str] = frozenset()
    revocations_version: int = 0
    revocations: list[dict[str, Any]] = field(default_factory=list)  # the signed snapshot, then deltas
    # The revocation list's version the ledger's member list (or MQTT) says exists: held, or behind.
    revocations_due: int = 0
    members: dict[str, MemberEntry] | None = None
    _keys: dict[str, Ed25519PublicKey] | None = None

    _by_identifier: dict[str, MemberEntry] = field(default_factory=dict)
    # The ledger's key (base64url): from the configuration or the enrolment, never from a file or an answer.
    pinned_key: str | None = None
    envelope: dict[str, Any] | None = None  # the signed rulebook in force, kept to re-check after a restart
    snapshot: dict[str, Any] | None = None  # the signed full member snapshot
    deltas: list[dict[str, Any]] = field(default_factory=list)  # signed deltas since, in order
    skipped_members: list[str] = field(default_factory=list)  # rows the ledger sent that could not be used
    loaded_at: str = ""  # when the member snapshot was taken (ISO UTC); balances are as of then
    # Customers this till enrolled (``gateway/members/joining.py``), by member id: known here until the
    # ledger's signed list carries their phone number (as them, or as the member they turned out to be).
    joined: dict[str, MemberEntry] = field(default_factory=dict)

    def ledger_key(self) -> Ed25519PublicKey:
        """The ledger key this till pinned (other signed documents, the staff list, are checked against it)."""
        return self._pinned()

    def _pinned(self) -> Ed25519PublicKey:
        if not self.pinned_key:
            raise NotEnrolledError(
                "no ledger key is pinned on this till: enrol it (posgw enroll) or set [ledger] rulebook_key; "
                "until then nothing the ledger sends is believed"
            )
        return public_key_from_text(self.pinned_key)

    def wants_full_snapshot(self) -> bool:
        """Ask the ledger for a full snapshot rather than a delta (none yet, or too many deltas kept)."""
        return self.snapshot is None or len(self.deltas) >= MAX_DELTAS

    def accept_signed(self, envelope: object, members: object, loaded_at: str = "", *, delta: bool = False) -> Rulebook:
        """A signed rulebook and a signed member snapshot (or delta), both from the pinned key; else refused
        and what is in force stays."""
        key = self._pinned()
        book, _ = open_rulebook(envelope, key)
        listing = open_members(members, key)
        if self.envelope is not None and book.version < self.rulebook.version:
            raise RulebookRefusedError(
                f"rulebook v{book.version} is older than v{self.rulebook.version} in force; not going back"
            )
        if delta and self.snapshot is None:
            raise RulebookRefusedError("a member delta arrived with no snapshot to apply it to")
        assert isinstance(envelope, dict)
        assert isinstance(members, dict)
        entries = listing.members
        if delta and self.members is not None:
            entries = list({**self.members, **{m.member_id: m for m in entries}}.values())
            # Kept if it changes something: members, or the revocation list's version the till must hold.
            if listing.members or listing.revocations > self.revocations_due:
                self.deltas.append(members)
        else:
            self.snapshot, self.deltas = members, []
        self.skipped_members = listing.skipped if not delta else [*self.skipped_members, *listing.skipped][-50:]
        self.revocations_due = max(self.revocations_due, listing.revocations)
        if listing.skipped:
            log.error("member_rows_skipped", count=len(listing.skipped), first=listing.skipped[0])
        self.envelope = envelope
        self._use(book, listing.version, entries, loaded_at)
        return book

    def _use(self, rulebook: Rulebook, members_version: int, members: list[MemberEntry], loaded_at: str = "") -> None:
        self.rulebook = rulebook
        self._keys = rulebook.public_keys()
        self.members_version = members_version
        self.members = {m.member_id: m for m in members}
        self._by_identifier = {i: m for m in members for i in m.identifiers}
        self.joined = {k: m for k, m in self.joined.items() if not set(m.identifiers) & self._by_identifier.keys()}
        self.loaded_at = loaded_at or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

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

    def join(self, member: MemberEntry) -> None:
        """A customer this till enrolled: a member here at once, until the ledger's list says who they are."""
        if not set(member.identifiers) & self._by_identifier.keys():
            self.joined[member.member_id] = member

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
        found = self._by_identifier.get(identifier)
        if found is None and self.joined:
            found = next((m for m in self.joined.values() if identifier in m.identifiers), None)
        return found

    def identify_token(self, token: str, *, now: int, leeway: int) -> MemberMatch:
        """Verify a ``PM1.`` member QR code, or a ``PW1.`` wallet pay code, and find its member.

        A wallet code identifies its member in the same scan ("pay = member");
        paying from the stored value is the payments module's part.
        """
        if self.members is None or not self._keys:
            raise RulesUnavailableError("member codes cannot be checked yet: this terminal has not reached the ledger")
        prefix, via = ("PW1.", "wallet") if token.startswith("PW1.") else ("PM1.", "qr")
        claims = verify_token(token, prefix, self._keys, now=now, leeway=leeway)
        return MemberMatch(self.lookup(claims.subject), via, token_nonce=f"{claims.kid}:{claims.nonce}", code=token)

    def wants_full_revocations(self) -> bool:
        return not self.revocations or len(self.revocations) > MAX_DELTAS

    def accept_revocations(self, envelope: object) -> int:
        """A signed revocation list (snapshot or delta from the version held); the version now held.

        Refused (:class:`~protocols.revocations.RevocationsRefusedError`, or
        a bad signature): what is held stays, and the caller asks for a full list.
        """
        update = open_revocations(envelope, self._pinned())
        self.revoked_coupons, self.revocations_version = apply_revocations(
            self.revoked_coupons, self.revocations_version, update
        )
        assert isinstance(envelope, dict)
        if update.since == 0:
            self.revocations = [envelope]
        elif update.copies:
            self.revocations.append(envelope)
        return self.revocations_version

    def lookup(self, member_id: str) -> MemberEntry:
        member = (self.members or {}).get(member_id) or self.joined.get(member_id)
        if member is None:
            raise UnknownMemberError("this member is not known to the terminal; ask the customer to refresh the app")
        return check_active(member)

    def save(self, path: Path) -> None:
        """Write the cache atomically (temp file, fsync, rename): the ledger's signed documents as sent.

        Members learned by an online look-up are not kept: only what the
        ledger signed as a snapshot or a delta survives a restart.
        """
        if self.snapshot is None or self.envelope is None:
            return
        body = {
            "format": CACHE_FORMAT,
            "signed_rulebook": self.envelope,
            "member_snapshot": self.snapshot,
            "member_deltas": self.deltas,
            "revocations": self.revocations,
            "loaded_at": self.loaded_at,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(body, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):  # the first error is the one to report
                tmp.unlink(missing_ok=True)
            raise

    def load(self, path: Path) -> bool:
        """Load the cache a previous run left, every document checked again against the pinned key.

        A cache that is damaged, edited, signed by another key, or of an
        older format is reported and ignored: the till asks the ledger again.
        """
        try:
            body = read_json(path.read_bytes(), str(path), max_bytes=MAX_CACHE_BYTES)
            if not isinstance(body, dict) or body.get("format") != CACHE_FORMAT:
                raise RulebookRefusedError(f"not a format-{CACHE_FORMAT} cache (signed snapshot and deltas)")
            loaded_at = str(body.get("loaded_at") or "1970-01-01")
            self.accept_signed(body.get("signed_rulebook"), body.get("member_snapshot"), loaded_at)
            deltas = body.get("member_deltas")
            for delta in deltas if isinstance(deltas, list) else [None]:
                self.accept_signed(body.get("signed_rulebook"), delta, loaded_at, delta=True)
            revocations = body.get("revocations")
            for document in revocations if isinstance(revocations, list) else [None]:
                self.accept_revocations(document)
            # A revocation list older than its member list names (it lagged, or was cut out of the file):
            # loaded, and no coupon is taken until a current one comes (gateway/members/coupons.py).
        except FileNotFoundError:
            return False
        except (OSError, ValueError, RecursionError, GatewayError) as err:
            log.warning("member_cache_unreadable", path=str(path), error=str(err)[:300])
            self._forget()
            return False
        return True

    def _forget(self) -> None:
        """Back to the state before any contact (a cache that failed half way leaves nothing behind)."""
        self.rulebook, self.members_version, self.members, self._keys = EMPTY_RULEBOOK, 0, None, None
        self._by_identifier, self.envelope, self.snapshot, self.deltas = {}, None, None, []
        self.skipped_members, self.loaded_at = [], ""
        self.revoked_coupons, self.revocations_version, self.revocations = frozenset(), 0, []
        self.revocations_due = 0


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
