"""Price a basket for a member: tier discount per line, points on what is paid.

Per line: ``net = round_half_up(gross × rate)`` where the rate is the member's
tier rate at this merchant (basis points, 10000 = full price); the discount is
``gross − net``, so lines always add up. Categories the rulebook excludes
(gift cards, tobacco…) are never discounted. Points: ``floor(total_due /
fen_per_point)`` (1 point per ¥100 by default), for members only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.basket import BasketLine
from protocols.money import FULL_RATE, apply_rate
from protocols.rulebook import MemberEntry, Rulebook


@dataclass(frozen=True, slots=True)
class PricedLine:
    line: BasketLine
    gross: int
    rate: int
    discount: int
    net: int


@dataclass(frozen=True, slots=True)
class PricedBasket:
    lines: tuple[PricedLine, ...]
    total_gross: int
    total_discount: int
    total_due: int
    points_earned: int
    rulebook_version: int


def price(
    lines: Sequence[BasketLine], member: MemberEntry | None, rulebook: Rulebook, merchant_id: str
) -> PricedBasket:
    tier = rulebook.tiers.get(member.tier) if member is not None else None
    rate = tier.rate_for(merchant_id) if tier is not None else FULL_RATE
    priced = []
    for line in lines:
        gross = line.unit_price * line.quantity
        line_rate = FULL_RATE if line.category in rulebook.excluded_categories else rate
        net = apply_rate(gross, line_rate)
        priced.append(PricedLine(line, gross, line_rate, gross - net, net))
    total_gross = sum(p.gross for p in priced)
    total_due = sum(p.net for p in priced)
    points = total_due // rulebook.fen_per_point if member is not None else 0
    return PricedBasket(tuple(priced), total_gross, total_gross - total_due, total_due, points, rulebook.version)
