"""What pricing produces: lines with each benefit's share, totals, and the reasons."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.basket import BasketLine


@dataclass(frozen=True, slots=True)
class PricedLine:
    line: BasketLine
    gross: int
    rate: int  # the tier rate applied, basis points (10000 = no tier discount)
    tier_discount: int
    coupon_discount: int
    offset: int  # paid with points
    net: int  # what the customer pays for this line in money
    multiplier: int  # the points multiplier that applied, basis points
    eligible: bool  # False for excluded categories (gift cards, tobacco…)

    @property
    def discount(self) -> int:
        return self.tier_discount + self.coupon_discount + self.offset


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One rule's effect, for the receipt and the customer display."""

    kind: str  # tier | coupon | offset | exchange
    rule: str  # tier name, coupon id, "offset"
    label: str
    amount: int  # fen taken off the bill
    per_line: dict[int, int]  # line_id -> fen
    points: int = 0  # points this benefit spends


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

    @property
    def total_discount(self) -> int:
        return self.total_tier_discount + self.total_coupon_discount + self.total_offset
