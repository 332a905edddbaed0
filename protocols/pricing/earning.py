"""What a priced bill earns: points and growth value, per line and per way of paying.

The same function runs at the till (pricing a basket) and at the ledger
(re-checking a record), so both arrive at the same figure from the same lines.

Each eligible line's money part (its ``net``) is paid by the bill's payments
in proportion to their amounts; the part of it a payment pays earns at the
highest multiplier of the campaigns that apply to that line *and* that way of
paying (they never compound). Stored value earns only when the rule says so
(``on_stored_value``). The part paid with points (``offset``) earns only when
``on_offset`` says so, at the multiplier of campaigns that name no payment
method. Exactly, over a common denominator ``T`` (the money due)::

    w_i = net_i × Σ_k t_k × mult(i, k)  +  offset_i × T × mult(i, none)
    points = ⌊ Σ w_i / (T × 10000 × fen_per_point) ⌋
    growth = ⌊ Σ g_i / (T × fen_per_growth) ⌋,  g_i likewise without multipliers

and the totals are shared out by the largest-remainder method: to the lines
by ``w_i`` (``g_i``), and to the payments by what each one's part weighs. A
bill paid in full by one method gives what ``⌊Σ net × mult / 10000 /
fen_per_point⌋`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from protocols.errors import MoneyError
from protocols.money import FULL_RATE, allocate
from protocols.pricing.model import Payment, TenderEarning
from protocols.rulebook import Rulebook

OFFSET_METHOD = "points"  # the part of a bill paid with points, as a TenderEarning's method


@dataclass(frozen=True, slots=True)
class EarningLine:
    """A line as earning sees it."""

    category: str
    eligible: bool  # its category takes benefits in this rulebook
    net: int  # money paid for it
    offset: int  # fen of it paid with points
    merchant: str | None = None  # its counter at a central checkout; None: the record's merchant


@dataclass(frozen=True, slots=True)
class Earning:
    points: tuple[int, ...]  # per line
    growth: tuple[int, ...]
    multipliers: tuple[int, ...]  # per line, the highest that applied to any part of it
    by_payment: tuple[TenderEarning, ...]

    @property
    def total_points(self) -> int:
        return sum(self.points)

    @property
    def total_growth(self) -> int:
        return sum(self.growth)


def nothing(n: int) -> Earning:
    return Earning((0,) * n, (0,) * n, (FULL_RATE,) * n, ())


def payments_for(due: int, known: Sequence[Payment]) -> list[Payment]:
    """The payments known so far toward a bill of ``due`` fen, and the rest as not known yet."""
    paid = sum(p.amount for p in known)
    if paid > due:
        raise MoneyError(f"payments of {paid} fen are more than the {due} fen due")
    return [*known, *([Payment(None, due - paid)] if paid < due else [])]


def payments_of(tenders: Sequence[tuple[str, int]], change: int) -> list[Payment]:
    """A record's tenders ``(kind, amount)`` as payments toward its bill: cash net of the change."""
    out: list[Payment] = []
    left = change
    for kind, amount in tenders:
        if kind == "cash" and left:
            given = min(left, amount)
            amount, left = amount - given, left - given
        if amount:
            out.append(Payment(kind, amount))
    if left:
        raise MoneyError(f"change of {change} fen is more than the cash tendered")
    return out


def earn(
    lines: Sequence[EarningLine],
    payments: Sequence[Payment],
    rulebook: Rulebook,
    merchant_id: str,
    day: date,
    tier: str | None,
) -> Earning:
    """Points and growth a member earns on ``lines`` paid by ``payments`` (which add up to the nets)."""
    due = sum(x.net for x in lines)
    if sum(p.amount for p in payments) != due:
        raise MoneyError(f"payments add up to {sum(p.amount for p in payments)} fen, the lines to {due}")
    rule = rulebook.earn
    scale = max(due, 1)  # the common denominator; with nothing due every line's net is 0

    def multiplier(x: EarningLine, method: str | None) -> int:
        if method == "wallet" and not rule.on_stored_value:
            return 0
        at = x.merchant or merchant_id
        found = [c.multiplier for c in rulebook.campaigns if c.applies(day, at, x.category, tier, method)]
        return max([FULL_RATE, *found])

    weights: list[int] = []
    growth_weights: list[int] = []
    highest: list[int] = []
    per_payment = [0] * len(payments)
    offset_weight = 0
    for x in lines:
        if not x.eligible:
            weights.append(0)
            growth_weights.append(0)
            highest.append(FULL_RATE)
            continue
        offset = x.offset if rule.on_offset else 0
        mults = [multiplier(x, p.method) for p in payments]
        own = multiplier(x, None)
        parts = [x.net * p.amount * m for p, m in zip(payments, mults, strict=True)]
        for k, part in enumerate(parts):
            per_payment[k] += part
        offset_weight += offset * scale * own
        weights.append(sum(parts) + offset * scale * own)
        rewarded = sum(x.net * p.amount for p, m in zip(payments, mults, strict=True) if m)
        growth_weights.append(rewarded + offset * scale)
        highest.append(
            max([own if offset else FULL_RATE, *(m for m, p in zip(mults, payments, strict=True) if p.amount)])
        )
    points = sum(weights) // (scale * FULL_RATE * rule.fen_per_point)
    growth = sum(growth_weights) // (scale * rule.fen_per_growth)
    by_line = allocate(points, weights) if sum(weights) else [0] * len(lines)
    growth_by_line = allocate(growth, growth_weights) if sum(growth_weights) else [0] * len(lines)
    methods = [*(p.method for p in payments), OFFSET_METHOD]
    amounts = [*(p.amount for p in payments), sum(x.offset for x in lines if x.eligible)]
    slices = [*per_payment, offset_weight]
    shares = allocate(points, slices) if sum(slices) else [0] * len(slices)
    by_payment = tuple(
        TenderEarning(m, a, s)
        for m, a, s, w in zip(methods, amounts, shares, slices, strict=True)
        if m != OFFSET_METHOD or w
    )
    return Earning(tuple(by_line), tuple(growth_by_line), tuple(highest), by_payment)
