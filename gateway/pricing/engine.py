"""``price()``: the pure pricing function.

Steps, in this order, each on what the previous one left:

1. **Tier discount**, per line: ``net = round_half_up(gross × rate)``; the rate
   is the member's tier rate for the line's category, else for this merchant,
   else the tier's default. Lines in excluded categories get no benefit at all.
2. **Coupons**, in the order given: scope (merchant, category), validity,
   minimum spend on the scoped lines' current net, then the amount (fixed,
   percent with ceiling, or one item exchanged for points). A coupon that does
   not stack with the tier discount first gives its lines back their tier
   discount. An exclusive coupon admits no other. The discount is allocated
   to the scoped lines pro rata by net, largest remainder.
3. **Points offset**, on allowed days and shops: whole units of
   ``points_per_yuan`` points per ¥1, capped at ``cap`` of the eligible bill
   (rounded down) and by the balance above ``min_balance``; allocated like
   coupons.
4. **Earning**, for members: each eligible line's net (plus its offset if the
   rule says so), less any stored-value payment the rule does not reward,
   times the highest multiplier of the campaigns that apply to it (they never
   compound); ``points = floor(Σ base × multiplier / (10000 × fen_per_point))``,
   ``growth = floor(Σ base / fen_per_growth)``.

Lines always add up: ``gross − tier − coupon − offset = net`` per line and in
total, and no line goes below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from math import gcd

from gateway.basket import BasketLine
from gateway.pricing.model import Adjustment, PricedBasket, PricedLine
from protocols.benefits import CouponDefinition
from protocols.money import FULL_RATE, allocate, apply_rate, format_cny
from protocols.rulebook import MemberEntry, Rulebook


@dataclass
class _Line:
    line: BasketLine
    gross: int
    eligible: bool
    rate: int = FULL_RATE
    tier: int = 0
    coupon: int = 0
    offset: int = 0
    multiplier: int = FULL_RATE

    @property
    def net(self) -> int:
        return self.gross - self.tier - self.coupon - self.offset


@dataclass
class _State:
    lines: list[_Line]
    adjustments: list[Adjustment] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    coupons: list[str] = field(default_factory=list)
    exclusive: bool = False  # an exclusive coupon is in: no other may join
    points_spent: int = 0


def price(
    lines: Sequence[BasketLine],
    member: MemberEntry | None,
    rulebook: Rulebook,
    merchant_id: str,
    *,
    today: date | None = None,
    coupons: Sequence[CouponDefinition] = (),
    points_to_redeem: int = 0,
    points_balance: int = 0,
    payment_method: str | None = None,
    stored_value_paid: int = 0,
    earn_as: MemberEntry | None = None,
) -> PricedBasket:
    """Price a basket. ``earn_as``: a member found only after paying ("pay = member"), who
    earns points on what was paid but whose tier did not price the basket."""
    day = today or date.today()
    state = _State([_Line(b, b.unit_price * b.quantity, b.category not in rulebook.excluded_categories) for b in lines])
    _tier(state, member, rulebook, merchant_id)
    for coupon in coupons:
        _coupon(state, coupon, member, merchant_id, day, points_balance)
    if points_to_redeem:
        _offset(state, member, rulebook, merchant_id, day, points_to_redeem, points_balance)
    _tier_adjustment(state, member)
    earner = member or earn_as
    earned, growth = _earn(state, earner, rulebook, merchant_id, day, payment_method, stored_value_paid)
    priced = tuple(
        PricedLine(x.line, x.gross, x.rate, x.tier, x.coupon, x.offset, x.net, x.multiplier, x.eligible)
        for x in state.lines
    )
    return PricedBasket(
        lines=priced,
        total_gross=sum(p.gross for p in priced),
        total_tier_discount=sum(p.tier_discount for p in priced),
        total_coupon_discount=sum(p.coupon_discount for p in priced),
        total_offset=sum(p.offset for p in priced),
        total_due=sum(p.net for p in priced),
        points_redeemed=state.points_spent,
        points_earned=earned,
        growth_earned=growth,
        coupons_applied=tuple(state.coupons),
        adjustments=tuple(state.adjustments),
        notices=tuple(state.notices),
        rulebook_version=rulebook.version,
    )


def _tier(state: _State, member: MemberEntry | None, rulebook: Rulebook, merchant_id: str) -> None:
    tier = rulebook.tiers.get(member.tier) if member is not None else None
    if tier is None:
        return
    for x in state.lines:
        if x.eligible:
            x.rate = tier.rate_for(merchant_id, x.line.category)
            x.tier = x.gross - apply_rate(x.gross, x.rate)


def _tier_adjustment(state: _State, member: MemberEntry | None) -> None:
    """Written last: a coupon that does not stack may have taken some tier discounts back."""
    per_line = {x.line.line_id: x.tier for x in state.lines if x.tier}
    if member is not None and per_line:
        label = f"{member.tier} member price"
        state.adjustments.insert(0, Adjustment("tier", member.tier, label, sum(per_line.values()), per_line))


def _spread(targets: list[_Line], amount: int, attr: str) -> dict[int, int]:
    """Allocate ``amount`` over ``targets`` by their current net (largest remainder)."""
    shares = allocate(amount, [x.net for x in targets])
    for x, share in zip(targets, shares, strict=True):
        setattr(x, attr, getattr(x, attr) + share)
    return {x.line.line_id: s for x, s in zip(targets, shares, strict=True) if s}


def _coupon(
    state: _State, c: CouponDefinition, member: MemberEntry | None, merchant_id: str, day: date, balance: int
) -> None:
    def refuse(reason: str) -> None:
        state.notices.append(f"coupon {c.name or c.coupon_id}: {reason}")

    iso = day.isoformat()
    if (c.valid_from and iso < c.valid_from) or (c.valid_to and iso > c.valid_to):
        return refuse(f"valid {c.valid_from or '…'} to {c.valid_to or '…'} only")
    if c.merchants and merchant_id not in c.merchants:
        return refuse("not valid at this shop")
    if c.coupon_id in state.coupons:
        return refuse("already applied to this basket")
    if state.coupons and (c.exclusive or state.exclusive):
        return refuse("cannot be combined with another coupon")
    scope = [x for x in state.lines if x.eligible and (not c.categories or x.line.category in c.categories)]
    if c.kind == "exchange":
        scope = [x for x in scope if x.line.sku == c.sku][:1]
    if not scope:
        return refuse("no item in the basket qualifies")
    if not c.stack_with_tier:
        for x in scope:
            x.tier, x.rate = 0, FULL_RATE
    base = sum(x.net for x in scope)
    if base < c.min_spend:
        return refuse(f"needs {format_cny(c.min_spend)} of qualifying items, the basket has {format_cny(base)}")
    points = 0
    if c.kind == "amount":
        amount = min(c.amount, base)
    elif c.kind == "percent":
        amount = base - apply_rate(base, FULL_RATE - c.rate)
        if c.ceiling:
            amount = min(amount, c.ceiling)
    else:  # exchange: one unit of the item, for points
        if member is None:
            return refuse("needs a member to spend points")
        if balance - state.points_spent < c.points:
            return refuse(f"needs {c.points} points, the member has {balance - state.points_spent}")
        x = scope[0]
        # One unit at its current price: the line's net shared per unit, rounded half-up.
        amount, points = (2 * x.net + x.line.quantity) // (2 * x.line.quantity), c.points
    per_line = _spread(scope, amount, "coupon")
    state.points_spent += points
    state.coupons.append(c.coupon_id)
    state.exclusive = state.exclusive or c.exclusive
    kind = "exchange" if c.kind == "exchange" else "coupon"
    state.adjustments.append(Adjustment(kind, c.coupon_id, c.name or c.coupon_id, amount, per_line, points))
    return None


def _offset(
    state: _State,
    member: MemberEntry | None,
    rulebook: Rulebook,
    merchant_id: str,
    day: date,
    wanted: int,
    balance: int,
) -> None:
    rule = rulebook.offset
    if member is None:
        state.notices.append("points offset needs a member")
        return
    if rule is None:
        state.notices.append("points offset is not offered")
        return
    if reason := rule.allowed(day, merchant_id):
        state.notices.append(reason)
        return
    # Whole units only: unit_points points pay exactly unit_fen fen.
    g = gcd(rule.points_per_yuan, 100)
    unit_points, unit_fen = rule.points_per_yuan // g, 100 // g
    targets = [x for x in state.lines if x.eligible and x.net > 0]
    cap_fen = sum(x.net for x in targets) * rule.cap // FULL_RATE
    available = max(0, balance - state.points_spent - rule.min_balance)
    units = min(wanted, available) // unit_points
    units = min(units, cap_fen // unit_fen)
    if units <= 0:
        state.notices.append("no points can be offset on this basket (balance, minimum balance or cap)")
        return
    fen, points = units * unit_fen, units * unit_points
    if points < wanted:
        state.notices.append(f"{wanted - points} of the {wanted} points asked were not used (cap or balance)")
    per_line = _spread(targets, fen, "offset")
    state.points_spent += points
    state.adjustments.append(Adjustment("offset", "offset", f"{points} points", fen, per_line, points))


def _earn(
    state: _State,
    member: MemberEntry | None,
    rulebook: Rulebook,
    merchant_id: str,
    day: date,
    payment_method: str | None,
    stored_value_paid: int,
) -> tuple[int, int]:
    if member is None:
        return 0, 0
    earn = rulebook.earn
    earning = [x for x in state.lines if x.eligible]
    bases = [x.net + (x.offset if earn.on_offset else 0) for x in earning]
    if stored_value_paid and not earn.on_stored_value:
        unrewarded = allocate(min(stored_value_paid, sum(x.net for x in earning)), [x.net for x in earning])
        bases = [b - u for b, u in zip(bases, unrewarded, strict=True)]
    weighted = 0
    for x, base in zip(earning, bases, strict=True):
        applicable = [
            c.multiplier
            for c in rulebook.campaigns
            if c.applies(day, merchant_id, x.line.category, member.tier, payment_method)
        ]
        x.multiplier = max([FULL_RATE, *applicable])
        weighted += base * x.multiplier
    return weighted // (FULL_RATE * earn.fen_per_point), sum(bases) // earn.fen_per_growth
