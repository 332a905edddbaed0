"""What pricing takes and produces: lines with each benefit's share, totals, and the reasons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BasketLine:
    """A line as the cashier rang it up: an item, how many, at what unit price (fen)."""

    line_id: int
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: int
    # A department store's central checkout: the counter (merchant) the line was sold for; None: the till's own.
    merchant: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """Part of the bill and how it is paid, for earning: a tender kind (``cash``, ``wallet``…),
    or ``None`` for the part whose tender is not known yet."""

    method: str | None
    amount: int  # fen toward the bill (cash net of change)


@dataclass(frozen=True, slots=True)
class PricedLine:
    line: BasketLine
    gross: int
    rate: int  # the tier rate applied, basis points (10000 = no tier discount)
    tier_discount: int
    coupon_discount: int
    offset: int  # fen paid with points
    net: int  # what the customer pays for this line in money
    multiplier: int  # the highest points multiplier that applied to any part of it, basis points
    eligible: bool  # False for excluded categories (gift cards, tobacco…)
    points: int = 0  # points this line earned (its share of the basket's, ``earning.py``)
    growth: int = 0  # growth value it earned
    points_spent: int = 0  # points it consumed: its share of the offset, or an exchange's price
    promotion_discount: int = 0  # its share of the promotions (member price, bundle, 满减)

    @property
    def discount(self) -> int:
        return self.tier_discount + self.promotion_discount + self.coupon_discount + self.offset


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One rule's effect, for the receipt and the customer display."""

    kind: str  # tier | promotion | coupon | exchange | offset
    rule: str  # tier name, coupon id, "offset"
    label: str
    amount: int  # fen taken off the bill
    per_line: dict[int, int]  # line_id -> fen
    points: int = 0  # points this benefit spends


@dataclass(frozen=True, slots=True)
class TenderEarning:
    """What one way of paying earned: ``method`` None is the part not paid yet (or paid with points)."""

    method: str | None
    amount: int
    points: int


@dataclass(frozen=True, slots=True)
class PricedBasket:
    lines: tuple[PricedLine, ...]
    total_gross: int
    total_tier_discount: int
    total_coupon_discount: int
    total_offset: int
    total_due: int  # money still to pay, after every benefit
    points_redeemed: int  # spent on offset and exchange coupons
    points_earned: int
    growth_earned: int
    coupons_applied: tuple[str, ...]
    adjustments: tuple[Adjustment, ...]
    notices: tuple[str, ...]  # benefits asked for but not given, with the reason
    rulebook_version: int
    earned_by: tuple[TenderEarning, ...] = ()  # the points, by how the bill is paid
    total_promotion_discount: int = 0

    @property
    def total_discount(self) -> int:
        return self.total_tier_discount + self.total_promotion_discount + self.total_coupon_discount + self.total_offset
