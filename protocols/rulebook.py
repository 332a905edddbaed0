"""The rulebook and the member cache, as the ledger distributes them.

Tiers with discount rates (default, per merchant, per category), categories
that never get a benefit, the earning rule, campaigns, the points-offset rule,
coupon definitions (``protocols/benefits.py``), promotions for everyone
(``protocols/promotions.py``), and the issuer public keys that
member tokens and cards are verified against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols.benefits import Campaign, CouponDefinition, EarnRule, OffsetRule, RiskLimits, SettlementRule
from protocols.business_day import DEFAULT_ZONE, is_zone
from protocols.chain import canonical_json
from protocols.controls import Controls
from protocols.errors import GatewayError, ProtocolError, SchemaError
from protocols.gift_cards import GIFT_CARD_CATEGORY, GiftCardRule
from protocols.money import FULL_RATE
from protocols.paid_tiers import PAID_TIER_CATEGORY
from protocols.promotions import Promotion, normal_code
from protocols.schema import Fields, Problems
from protocols.stored_value import TOPUP_SKU, StoredValueRule
from protocols.tokens import key_id, public_key_from_text

MEMBER_STATUSES = ("active", "frozen", "blacklisted")
# Sold at face value whatever the rulebook says: stored value, paid tiers and gift card loads take no benefit,
# not even a promotion for everyone (a 满减 at a fashion till must not take ¥50 off a ¥500 top-up), and earn nothing.
FACE_VALUE = frozenset({TOPUP_SKU, PAID_TIER_CATEGORY, GIFT_CARD_CATEGORY})


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    default_rate: int = FULL_RATE
    merchant_rates: dict[str, int] = field(default_factory=dict)
    category_rates: dict[str, int] = field(default_factory=dict)
    # The growth value a member earns in a calendar year to hold this tier
    # (``ledger/tiers.py``); None for a tier growth never reaches (a paid card).
    growth: int | None = None
    # A paid tier (``protocols/paid_tiers.py``): sold at the till for ``price`` fen, held ``validity_days``,
    # revoked by a refund within ``refund_days``. None: not for sale.
    price: int | None = None
    validity_days: int = 365
    refund_days: int = 7
    # What one till may sell of it in a business day: its cash is a till's word until the day's count, and the
    # tier multiplies what the member earns everywhere.
    daily_cap: int = 20

    def rate_for(self, merchant_id: str, category: str = "") -> int:
        """The payable share in basis points (10000 = no discount).

        The most specific rate wins: the category's, then the merchant's, then
        the tier's default.
        """
        if category in self.category_rates:
            return self.category_rates[category]
        return self.merchant_rates.get(merchant_id, self.default_rate)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "default_rate": self.default_rate,
            "merchant_rates": dict(self.merchant_rates),
            "category_rates": dict(self.category_rates),
        }
        if self.growth is not None:  # only when set: rulebooks without a ladder read as before
            wire["growth"] = self.growth
        if self.price is not None:  # likewise: only a tier for sale says so
            wire.update(
                price=self.price,
                validity_days=self.validity_days,
                refund_days=self.refund_days,
                daily_cap=self.daily_cap,
            )
        return wire


@dataclass(frozen=True, slots=True)
class Rulebook:
    version: int
    currency: str
    tiers: dict[str, Tier]
    excluded_categories: frozenset[str]
    issuer_keys: dict[str, str]
    earn: EarnRule = field(default_factory=EarnRule)
    campaigns: tuple[Campaign, ...] = ()
    offset: OffsetRule | None = None
    coupons: dict[str, CouponDefinition] = field(default_factory=dict)
    risk: RiskLimits = field(default_factory=RiskLimits)
    phone_salt: str = ""  # base64url; members' phone identifiers are hashed with it (protocols/phone.py)
    # The mall's time zone: every business day is cut at its midnight (``protocols/business_day.py``).
    zone: str = DEFAULT_ZONE
    stored_value: StoredValueRule | None = None  # None: this mall sells no stored value at its tills
    promotions: tuple[Promotion, ...] = ()  # for everyone, in the order they apply (``protocols/promotions.py``)
    controls: Controls | None = None  # daily caps on earning and surge alerts (``protocols/controls.py``)
    gift_cards: GiftCardRule | None = None  # None: this mall's tills sell no gift cards (``protocols/gift_cards.py``)
    settlement: SettlementRule = field(default_factory=SettlementRule)  # who bears what (tenant settlement)

    def promotion_by_code(self, code: str) -> Promotion | None:
        """The promotion a promo code (typed in any case, or scanned) unlocks."""
        wanted = normal_code(code)
        return next((p for p in self.promotions if p.code == wanted), None)

    @property
    def no_benefit(self) -> frozenset[str]:
        """The categories that take no benefit and earn nothing: the excluded ones, and what is sold at face value."""
        return self.excluded_categories | FACE_VALUE

    @property
    def fen_per_point(self) -> int:
        return self.earn.fen_per_point

    @property
    def joining_tier(self) -> str:
        """The tier a customer who joins at a till starts in: the ladder's lowest rung (the lowest growth
        threshold), or the first tier named when no tier has one."""
        ladder = sorted((t.growth, t.name) for t in self.tiers.values() if t.growth is not None)
        return ladder[0][1] if ladder else next(iter(self.tiers), "")  # "": no tiers, no one can join

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {kid: public_key_from_text(text) for kid, text in self.issuer_keys.items()}

    def to_wire(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "currency": self.currency,
            "tiers": {t.name: t.to_wire() for t in self.tiers.values()},
            "excluded_categories": sorted(self.excluded_categories),
            "issuer_keys": dict(self.issuer_keys),
            "earn": self.earn.to_wire(),
            "campaigns": [c.to_wire() for c in self.campaigns],
            "offset": None if self.offset is None else self.offset.to_wire(),
            "coupons": [c.to_wire() for c in self.coupons.values()],
            "phone_salt": self.phone_salt,
            "risk": self.risk.to_wire(),
            "timezone": self.zone,
            # Only when set: rulebooks without it keep the form they were signed in.
            **({} if self.stored_value is None else {"stored_value": self.stored_value.to_wire()}),
            **({"promotions": [p.to_wire() for p in self.promotions]} if self.promotions else {}),
            **({} if self.controls is None else {"controls": self.controls.to_wire()}),
            **({} if self.gift_cards is None else {"gift_cards": self.gift_cards.to_wire()}),
            **({} if self.settlement == SettlementRule() else {"settlement": self.settlement.to_wire()}),
        }

    @classmethod
    def from_wire(cls, data: object, source: str = "rulebook") -> Rulebook:
        problems = Problems(source)
        f = Fields(data, problems)
        tiers_f = f.table("tiers")
        tiers = {}
        for name in tiers_f.names():
            tf = tiers_f.table(name)
            tiers[name] = Tier(
                name,
                tf.integer("default_rate", FULL_RATE, minimum=0, maximum=FULL_RATE),
                tf.int_map("merchant_rates", maximum=FULL_RATE),
                tf.int_map("category_rates", maximum=FULL_RATE),
                tf.optional_integer("growth", minimum=0),
                tf.optional_integer("price", minimum=1, maximum=10**9),
                tf.integer("validity_days", 365, minimum=1, maximum=3660),
                tf.integer("refund_days", 7, minimum=0, maximum=365),
                tf.integer("daily_cap", 20, minimum=0, maximum=100_000),
            )
            tf.done()
            if tiers[name].price is not None and tiers[name].growth is not None:
                problems.add(f"tiers.{name}", "a paid tier has no growth threshold: growth never takes it away")
        keys_f = f.table("issuer_keys")
        offset_f = f.optional_table("offset")
        stored_f = f.optional_table("stored_value")
        controls_f = f.optional_table("controls")
        cards_f = f.optional_table("gift_cards")
        coupons = [CouponDefinition.read(cf) for cf in f.tables("coupons")]
        book = cls(
            version=f.integer("version", minimum=0),
            currency=f.text("currency", pattern=r"[A-Z]{3}"),
            tiers=tiers,
            excluded_categories=frozenset(f.texts("excluded_categories")),
            issuer_keys={kid: keys_f.text(kid) for kid in keys_f.names()},
            earn=EarnRule.read(f.table("earn")),
            campaigns=tuple(Campaign.read(cf) for cf in f.tables("campaigns")),
            offset=None if offset_f is None else OffsetRule.read(offset_f),
            coupons={c.coupon_id: c for c in coupons},
            phone_salt=f.text("phone_salt", "", pattern=r"[A-Za-z0-9_-]*"),
            risk=RiskLimits.read(f.table("risk")),
            zone=f.text("timezone", DEFAULT_ZONE, max_len=64),
            stored_value=None if stored_f is None else StoredValueRule.read(stored_f),
            promotions=tuple(Promotion.read(pf) for pf in f.tables("promotions", max_items=200)),
            controls=None if controls_f is None else Controls.read(controls_f),
            gift_cards=None if cards_f is None else GiftCardRule.read(cards_f),
            settlement=SettlementRule.read(f.table("settlement")),
        )
        ids = [p.promotion_id for p in book.promotions]
        codes = [p.code for p in book.promotions if p.code is not None]
        if len(set(ids)) != len(ids) or len(set(codes)) != len(codes):
            problems.add("promotions", "each promotion has its own id, and each promo code unlocks one promotion")
        if not is_zone(book.zone):
            problems.add("timezone", f"{book.zone!r} is not a time zone this machine knows (an IANA name)")

        f.done()
        problems.raise_if_any()
        try:
            book.public_keys()
        except GatewayError as err:
            raise SchemaError(source, [f"issuer_keys: {err}"]) from err
        return book


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """What a terminal may know about a member offline. No personal data."""

    member_id: str
    tier: str
    status: str = "active"
    # How the member can be recognised at a till: "card:<number>", "uid:<hex>".
    identifiers: tuple[str, ...] = ()
    points: int = 0  # balance when the ledger made the snapshot
    wallet: int = 0  # stored value in fen, likewise

    def to_wire(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "tier": self.tier,
            "status": self.status,
            "identifiers": list(self.identifiers),
            "points": self.points,
            "wallet": self.wallet,
        }

    @classmethod
    def read(cls, f: Fields) -> MemberEntry:
        entry = cls(
            f.text("member_id"),
            f.text("tier"),
            f.text("status", "active", choices=MEMBER_STATUSES),
            tuple(f.texts("identifiers")),
            f.integer("points", 0, minimum=0),
            f.integer("wallet", 0, minimum=0, maximum=10**12),
        )
        f.done()
        return entry


@dataclass(frozen=True, slots=True)
class MemberList:
    """A member snapshot or delta as read: the rows that hold, and why each other row was skipped."""

    version: int
    members: list[MemberEntry]
    skipped: list[str]  # "members[12] (M0042): points: must be at least 0, got -5"
    revocations: int = 0  # the revocation list's version when this was issued: a till holds at least that


def members_from_wire(data: object, source: str = "member snapshot") -> MemberList:
    """Parse a member snapshot or delta: ``{"version": n, "full": bool, "members": [...]}``.

    A member row the schema refuses is skipped and named in ``skipped``: one
    bad row must not cost a mall's tills every other member. The envelope
    itself (version, the list) must hold, or nothing is used.
    """
    problems = Problems(source)
    f = Fields(data, problems)
    version = f.integer("version", minimum=0)
    f.flag("full", True)
    revocations = f.integer("revocations", 0, minimum=0, maximum=2**62)
    rows = f.items("members", max_items=1_000_000)
    f.done()
    problems.raise_if_any()
    members: list[MemberEntry] = []
    skipped: list[str] = []
    for i, row in enumerate(rows):
        own = Problems(source)
        entry = MemberEntry.read(Fields(row, own, f"members[{i}]"))
        if own.items:
            member_id = row.get("member_id") if isinstance(row, dict) else None
            name = f" ({member_id})" if isinstance(member_id, str) and len(member_id) <= 64 else ""
            skipped.append(f"members[{i}]{name}: {'; '.join(own.items)[:300]}")
        else:
            members.append(entry)
    return MemberList(version, members, skipped, revocations)


RULEBOOK_FORMAT = 1  # the envelope and rulebook layout this posgw understands


class RulebookRefusedError(ProtocolError):
    """A rulebook that must not be used: bad signature, unknown format, or older than the one in force."""

    code = "rulebook-refused"


def seal_document(field: str, wire: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The ledger's side: ``wire`` under ``field`` in an envelope signed with ``key`` (rulebooks, member
    lists, revocation lists)."""
    kid = key_id(key.public_key())
    return {"format": RULEBOOK_FORMAT, "kid": kid, field: wire, "signature": key.sign(canonical_json(wire)).hex()}


def open_document(envelope: object, field: str, what: str, pinned: Ed25519PublicKey) -> dict[str, Any]:
    """The document under ``field``, once its signature holds for the pinned ledger key; nothing in it is
    read before that."""
    wire, kid, signature = _unseal(envelope, field, what)
    if kid != key_id(pinned):
        raise RulebookRefusedError(f"the {what} is signed by key {kid}, not the ledger key this till pinned")
    _check(pinned, signature, wire, what)
    return wire


def _unseal(envelope: object, field: str, what: str) -> tuple[dict[str, Any], str, str]:
    if not isinstance(envelope, dict):
        raise RulebookRefusedError(f"the {what} is not a signed envelope")
    fmt = envelope.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > RULEBOOK_FORMAT:
        raise RulebookRefusedError(f"{what} format {fmt!r} is unknown to this posgw (knows {RULEBOOK_FORMAT})")
    wire, kid, signature = envelope.get(field), envelope.get("kid"), envelope.get("signature")
    if not isinstance(wire, dict) or not isinstance(kid, str) or not isinstance(signature, str):
        raise RulebookRefusedError(f"the {what} envelope lacks {field}, kid or signature")
    return wire, kid, signature


def _check(key: Ed25519PublicKey, signature: str, wire: dict[str, Any], what: str) -> None:
    try:
        key.verify(bytes.fromhex(signature), canonical_json(wire))
    except (InvalidSignature, ValueError) as err:
        raise RulebookRefusedError(f"the {what}'s signature does not verify: it was altered or forged") from err


def sign_rulebook(book: Rulebook, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The ledger's side: wrap the rulebook with its Ed25519 signature."""
    return seal_document("rulebook", book.to_wire(), key)


def open_rulebook(envelope: object, pinned: Ed25519PublicKey) -> tuple[Rulebook, Ed25519PublicKey]:
    """Check a signed rulebook against the ledger key this till pinned; return it and that key.

    The signature is checked before a byte of the rulebook is read: nobody
    but the ledger gets to feed the parser. A till has its key from
    enrolment or its configuration, never from a rulebook or a cache.
    """
    wire = open_document(envelope, "rulebook", "rulebook", pinned)
    return Rulebook.from_wire(wire, "signed rulebook"), pinned


def sign_members(snapshot: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The ledger's side: wrap a member snapshot or delta with its signature."""
    return seal_document("members", snapshot, key)


def open_members(envelope: object, key: Ed25519PublicKey) -> MemberList:
    """Check a signed member snapshot against the ledger's (pinned) key, then read it."""
    return members_from_wire(open_document(envelope, "members", "member snapshot", key), "signed member snapshot")
