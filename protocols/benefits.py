"""Member benefits in the rulebook: earning, campaigns, points offset, coupon definitions.

Pure values and their parsing; the pricing engine (``gateway/pricing``)
applies them. Money is integer fen, rates and multipliers basis points
(``15000`` = ×1.5), weekdays ISO numbers (1 = Monday … 7 = Sunday), dates ISO
``YYYY-MM-DD``. An empty set in a scope means "any".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from protocols.money import FULL_RATE
from protocols.schema import Fields

COUPON_KINDS = ("amount", "percent", "exchange")


def _days(f: Fields, key: str) -> frozenset[int]:
    return frozenset(f.integer_list(key, minimum=1, maximum=7))


def _dates(f: Fields, key: str) -> frozenset[str]:
    values = f.texts(key)
    for v in values:
        try:
            date.fromisoformat(v)
        except ValueError:
            f.problems.add(f"{f.path}.{key}", f"{v!r} is not a YYYY-MM-DD date")
    return frozenset(values)


def _optional_date(f: Fields, key: str) -> str | None:
    return f.optional_text(key, pattern=r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class EarnRule:
    """Points on what was actually paid, rounded down; growth value alongside."""

    fen_per_point: int = 10_000  # 1 point per ¥100
    fen_per_growth: int = 100  # 1 growth per ¥1
    on_offset: bool = False  # does the part paid with points earn points?
    on_stored_value: bool = True  # "pay = earn points": the member wallet earns

    def to_wire(self) -> dict[str, Any]:
        return {
            "fen_per_point": self.fen_per_point,
            "fen_per_growth": self.fen_per_growth,
            "on_offset": self.on_offset,
            "on_stored_value": self.on_stored_value,
        }

    @classmethod
    def read(cls, f: Fields) -> EarnRule:
        rule = cls(
            f.integer("fen_per_point", 10_000, minimum=1),
            f.integer("fen_per_growth", 100, minimum=1),
            f.flag("on_offset", False),
            f.flag("on_stored_value", True),
        )
        f.done()
        return rule


@dataclass(frozen=True, slots=True)
class Campaign:
    """A points multiplier; of the campaigns that apply to a line, the highest wins (they never compound)."""

    campaign_id: str
    name: str
    multiplier: int  # basis points: 20000 = double points
    start: str | None = None
    end: str | None = None
    weekdays: frozenset[int] = frozenset()
    merchants: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    payment_methods: frozenset[str] = frozenset()
    tiers: frozenset[str] = frozenset()

    def applies(self, day: date, merchant: str, category: str, tier: str | None, payment: str | None) -> bool:
        iso = day.isoformat()
        return (
            (self.start is None or iso >= self.start)
            and (self.end is None or iso <= self.end)
            and (not self.weekdays or day.isoweekday() in self.weekdays)
            and (not self.merchants or merchant in self.merchants)
            and (not self.categories or category in self.categories)
            and (not self.payment_methods or payment in self.payment_methods)
            and (not self.tiers or tier in self.tiers)
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.campaign_id,
            "name": self.name,
            "multiplier": self.multiplier,
            "start": self.start,
            "end": self.end,
            "weekdays": sorted(self.weekdays),
            "merchants": sorted(self.merchants),
            "categories": sorted(self.categories),
            "payment_methods": sorted(self.payment_methods),
            "tiers": sorted(self.tiers),
        }

    @classmethod
    def read(cls, f: Fields) -> Campaign:
        campaign = cls(
            f.text("id", max_len=64),
            f.text("name", "", max_len=200),
            f.integer("multiplier", minimum=FULL_RATE, maximum=10 * FULL_RATE),
            _optional_date(f, "start"),
            _optional_date(f, "end"),
            _days(f, "weekdays"),
            frozenset(f.texts("merchants")),
            frozenset(f.texts("categories")),
            frozenset(f.texts("payment_methods")),
            frozenset(f.texts("tiers")),
        )
        f.done()
        return campaign


@dataclass(frozen=True, slots=True)
class OffsetRule:
    """Points spent as money: ``points_per_yuan`` points pay ¥1, on allowed days, up to a share of the bill."""

    points_per_yuan: int = 100
    weekdays: frozenset[int] = frozenset()
    dates: frozenset[str] = frozenset()
    merchants: frozenset[str] = frozenset()
    cap: int = 5_000  # basis points of the eligible bill
    min_balance: int = 0  # points that must remain after the offset

    def allowed(self, day: date, merchant: str) -> str | None:
        """``None`` when offset is allowed; otherwise the reason, for the cashier."""
        if self.merchants and merchant not in self.merchants:
            return "points offset is not available at this shop"
        if (
            (self.weekdays or self.dates)
            and day.isoweekday() not in self.weekdays
            and day.isoformat() not in self.dates
        ):
            names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            days = ", ".join(names[d - 1] for d in sorted(self.weekdays)) or "special dates"
            return f"points offset is only on {days}"
        return None

    def to_wire(self) -> dict[str, Any]:
        return {
            "points_per_yuan": self.points_per_yuan,
            "weekdays": sorted(self.weekdays),
            "dates": sorted(self.dates),
            "merchants": sorted(self.merchants),
            "cap": self.cap,
            "min_balance": self.min_balance,
        }

    @classmethod
    def read(cls, f: Fields) -> OffsetRule:
        rule = cls(
            f.integer("points_per_yuan", 100, minimum=1, maximum=100_000),
            _days(f, "weekdays"),
            _dates(f, "dates"),
            frozenset(f.texts("merchants")),
            f.integer("cap", 5_000, minimum=0, maximum=FULL_RATE),
            f.integer("min_balance", 0, minimum=0),
        )
        f.done()
        return rule


@dataclass(frozen=True, slots=True)
class CouponDefinition:
    """A kind of coupon; a customer's coupon (a ``CP1.`` token) names one of these."""

    coupon_id: str
    name: str
    kind: str  # amount | percent | exchange
    amount: int = 0  # fen off (amount)
    rate: int = 0  # basis points off (percent)
    ceiling: int = 0  # most fen off (percent); 0 = no ceiling
    sku: str = ""  # the item given (exchange)
    points: int = 0  # points it costs (exchange)
    min_spend: int = 0  # fen of eligible items needed
    merchants: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    valid_from: str | None = None
    valid_to: str | None = None
    stack_with_tier: bool = True  # False: the lines it covers lose their tier discount
    exclusive: bool = False  # True: no other coupon in the same basket

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.coupon_id,
            "name": self.name,
            "kind": self.kind,
            "amount": self.amount,
            "rate": self.rate,
            "ceiling": self.ceiling,
            "sku": self.sku,
            "points": self.points,
            "min_spend": self.min_spend,
            "merchants": sorted(self.merchants),
            "categories": sorted(self.categories),
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "stack_with_tier": self.stack_with_tier,
            "exclusive": self.exclusive,
        }

    @classmethod
    def read(cls, f: Fields) -> CouponDefinition:
        coupon = cls(
            f.text("id", max_len=64),
            f.text("name", "", max_len=200),
            f.text("kind", choices=COUPON_KINDS),
            f.integer("amount", 0, minimum=0, maximum=10**9),
            f.integer("rate", 0, minimum=0, maximum=FULL_RATE),
            f.integer("ceiling", 0, minimum=0, maximum=10**9),
            f.text("sku", "", max_len=64),
            f.integer("points", 0, minimum=0, maximum=10**9),
            f.integer("min_spend", 0, minimum=0, maximum=10**10),
            frozenset(f.texts("merchants")),
            frozenset(f.texts("categories")),
            _optional_date(f, "valid_from"),
            _optional_date(f, "valid_to"),
            f.flag("stack_with_tier", True),
            f.flag("exclusive", False),
        )
        f.done()
        if coupon.kind == "exchange" and not coupon.sku:
            f.problems.add(f.path, "an exchange coupon needs the sku it gives")
        return coupon


@dataclass(frozen=True, slots=True)
class SettlementRule:
    """Who bears what, for the tenant settlement (``ledger/settlement.py``)."""

    tenant_points_share: int = 0  # basis points of the value of the points a tenant's sales issue it pays the mall
    coupons_funded_by: str = "mall"  # mall | tenant: coupons and exchanges (promotions say their own)

    def to_wire(self) -> dict[str, Any]:
        return {"tenant_points_share": self.tenant_points_share, "coupons_funded_by": self.coupons_funded_by}

    @classmethod
    def read(cls, f: Fields) -> SettlementRule:
        rule = cls(
            f.integer("tenant_points_share", 0, minimum=0, maximum=FULL_RATE),
            f.text("coupons_funded_by", "mall", choices=("mall", "tenant")),
        )
        f.done()
        return rule


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """How much a member may spend at a terminal that cannot reach the ledger.

    The worst case a member can double-spend across a mall is the per-member
    limit times the number of terminals they can reach while all of them are
    offline; ``docs/pricing.md`` states it for the demo figures.
    """

    max_points_per_sale: int = 5_000
    max_member_points: int = 10_000  # cumulative, per member, per terminal, while offline
    max_member_sales: int = 3  # sales spending points, per member, per terminal, while offline
    max_offline_hours: float = 24.0  # after this long without the ledger, no points may be spent
    # Balances in a member snapshot older than this are not trusted for spending
    # (discounts still apply): the terminal must refresh first.
    max_snapshot_hours: float = 24.0
    max_wallet_per_sale: int = 50_000  # fen of stored value one sale may take offline
    max_member_wallet: int = 100_000  # fen, cumulative, per member, per terminal, while offline

    def to_wire(self) -> dict[str, Any]:
        return {
            "max_points_per_sale": self.max_points_per_sale,
            "max_member_points": self.max_member_points,
            "max_member_sales": self.max_member_sales,
            "max_offline_hours": self.max_offline_hours,
            "max_snapshot_hours": self.max_snapshot_hours,
            "max_wallet_per_sale": self.max_wallet_per_sale,
            "max_member_wallet": self.max_member_wallet,
        }

    @classmethod
    def read(cls, f: Fields) -> RiskLimits:
        limits = cls(
            max_points_per_sale=f.integer("max_points_per_sale", 5_000, minimum=0),
            max_member_points=f.integer("max_member_points", 10_000, minimum=0),
            max_member_sales=f.integer("max_member_sales", 3, minimum=0),
            max_offline_hours=f.number("max_offline_hours", 24.0, minimum=0),
            max_snapshot_hours=f.number("max_snapshot_hours", 24.0, minimum=0),
            max_wallet_per_sale=f.integer("max_wallet_per_sale", 50_000, minimum=0),
            max_member_wallet=f.integer("max_member_wallet", 100_000, minimum=0),
        )
        f.done()
        return limits
