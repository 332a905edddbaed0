"""What a promotion gives a basket (``protocols/promotions.py`` defines them): pure arithmetic in fen.

The engine (``engine.py``) decides which promotions apply and spreads each one's
discount over the lines it covers; this module says how much it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from protocols.promotions import Promotion


@dataclass(frozen=True, slots=True)
class Goods:
    """A line as a promotion sees it: its item, how many units, and what they cost now (fen)."""

    sku: str
    quantity: int
    net: int


def units_value(goods: Goods, units: int) -> int:
    """``units`` of a line at its current price: its net shared per unit, rounded half up, never above the net."""
    if units >= goods.quantity:
        return goods.net
    return (2 * units * goods.net + goods.quantity) // (2 * goods.quantity)


def spend_off(p: Promotion, base: int) -> int:
    """满减: fen off for ``base`` fen of scoped items (the highest step reached, or every full step)."""
    if p.repeat:
        step = p.steps[0]
        off = base // step.min_spend * step.off
        return min(off, p.max_off) if p.max_off else off
    reached = [s.off for s in p.steps if base >= s.min_spend]
    return min(max(reached, default=0), base)


def next_step(p: Promotion, base: int) -> int | None:
    """The spend a basket of ``base`` fen needs for its next step, if there is one (the cashier's hint)."""
    above = [s.min_spend for s in p.steps if s.min_spend > base]
    if p.repeat:
        return (base // p.steps[0].min_spend + 1) * p.steps[0].min_spend
    return min(above, default=None)


def bundle_free(p: Promotion, scope: Sequence[Goods], gifts: Sequence[Goods]) -> list[int]:
    """Buy X get Y: how many units of each line are free.

    ``scope``: the lines the promotion counts. Cheapest-free (no ``free_sku``): of
    every ``buy + get`` units counted, ``get`` are free, and the free ones are
    the cheapest units of the basket's (ties: the earlier line). Named item:
    every ``buy`` units counted (the gift itself never counts) make ``get``
    units of ``free_sku`` free, from ``gifts`` (the lines of that item), as many
    as the basket holds. The answer has one count per line of ``scope`` then
    of ``gifts``.
    """
    if not p.free_sku:
        counted = sum(g.quantity for g in scope)
        free = counted // (p.buy + p.get) * p.get
        order = sorted(range(len(scope)), key=lambda i: (Fraction(scope[i].net, scope[i].quantity), i))
        counts = [0] * len(scope)
        for i in order:
            counts[i] = min(free, scope[i].quantity)
            free -= counts[i]
        return counts + [0] * len(gifts)
    counted = sum(g.quantity for g in scope if g.sku != p.free_sku)
    free = counted // p.buy * p.get
    gift_counts = []
    for g in gifts:
        gift_counts.append(min(free, g.quantity))
        free -= gift_counts[-1]
    return [0] * len(scope) + gift_counts
