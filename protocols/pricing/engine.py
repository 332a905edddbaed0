"""``price()``: the pure pricing function, the same at the till and at the ledger.

Steps, in this order, each on what the previous one left:

1. **Tier discount**, per line: ``net = round_half_up(gross × rate)``; the rate
   is the member's tier rate for the line's category, else for this merchant,
   else the tier's default. Lines in excluded categories get no benefit at all.
2. **Promotions** (``promotions.py``), the rulebook's rules for everyone:
   member prices (the better of the member price and the tier discount),
   then bundles (buy X get Y), then spend thresholds (满减), each in the
   rulebook's order on what the step before left, each spread over the lines
   it covers pro rata by net. A promotion with a code applies only to a
   basket the code was given to.
3. **Coupons**, in the order given: scope (merchant, category), validity on
   the mall's business day, minimum spend on the scoped lines' current net,
   then the amount (fixed, percent with ceiling, or one item exchanged for
   points). A coupon that does not stack with the tier discount first gives
   its lines back their tier discount. An exclusive coupon admits no other.
   The discount is allocated to the scoped lines pro rata by net, largest
   remainder. A promotion that does not stack with coupons, once it has
   given something, admits none.
4. **Points offset**, on allowed days and shops: whole units of
   ``points_per_yuan`` points per ¥1, capped at ``cap`` of the eligible bill
   (rounded down) and by the balance above ``min_balance``; allocated like
   coupons, fen and points alike.
5. **Earning** (``earning.py``), for members: points and growth on what was
   paid, by line and by way of paying, with the payments known so far (the
   rest counted as not known yet): a wallet campaign shows in the priced
   basket as soon as the wallet has paid.

Lines always add up: ``gross − tier − promotion − coupon − offset = net`` per line and in
total, and no line goes below zero. Per line, the points earned, the growth
and the points spent add up to the basket's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from math import gcd

from protocols.benefits import CouponDefinition
from protocols.money import FULL_RATE, allocate, apply_rate, format_cny
from protocols.pricing.earning import EarningLine, earn, nothing, payments_for
from protocols.pricing.model import Adjustment, BasketLine, Payment, PricedBasket, PricedLine
from protocols.pricing.promotions import Goods, bundle_free, next_step, spend_off, units_value
from protocols.promotions import Promotion
from protocols.rulebook import MemberEntry, Rulebook


@dataclass
class _Line:
    line: BasketLine
    gross: int
    eligible: bool
    rate: int = FULL_RATE
    tier: int = 0
    promotion: int = 0
    coupon: int = 0
    offset: int = 0
    points_spent: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.tier - self.promotion - self.coupon - self.offset

    @property
    def goods(self) -> Goods:
        return Goods(self.line.sku, self.line.quantity, self.net)


@dataclass
class _State:
    lines: list[_Line]
    adjustments: list[Adjustment] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    coupons: list[str] = field(default_factory=list)
    exclusive: bool = False  # an exclusive coupon is in: no other may join
    no_coupons: str | None = None  # a promotion that admits no coupon gave something (its name)
    points_spent: int = 0
    merchant: str = ""  # the till's own merchant: a line naming none is sold for it

    def at(self, x: _Line) -> str:
        """The merchant a line is sold for: its counter at a central checkout, else the till's own."""
        return x.line.merchant or self.merchant

    def covers(self, p: Promotion, x: _Line) -> bool:
        """Whether promotion ``p`` takes ``x``: its goods, sold for a merchant it runs at."""
        return p.covers(x.line.sku, x.line.category) and (not p.merchants or self.at(x) in p.merchants)


def price(
    lines: Sequence[BasketLine],
    member: MemberEntry | None,
    rulebook: Rulebook,
    merchant_id: str,
    *,
    day: date,
    coupons: Sequence[CouponDefinition] = (),
    points_to_redeem: int = 0,
    points_balance: int = 0,
    payments: Sequence[Payment] = (),
    earn_as: MemberEntry | None = None,
    minute: int | None = None,
    promo_codes: Sequence[str] = (),
    earn: bool = True,
) -> PricedBasket:
    """Price a basket on the mall's business ``day``.

    ``minute``: the time of day in the mall's zone, minutes after midnight
    (promotions limited to hours need it; ``None`` is outside every window).
    ``promo_codes``: the codes given to the basket, as the rulebook spells them.
    ``earn=False``: the benefits only, no earning worked out (the ledger's check of a sale's benefits).

    ``payments``: what is known of how the bill is paid (the rest is counted as
    not known yet). ``earn_as``: a member found only after paying ("pay =
    member"), who earns points on what was paid but whose tier did not price
    the basket.
    """
    taking = [_Line(b, b.unit_price * b.quantity, b.category not in rulebook.no_benefit) for b in lines]
    state = _State(taking, merchant=merchant_id)
    _tier(state, member, rulebook, merchant_id)
    _promotions(state, member, rulebook, merchant_id, day, minute, frozenset(promo_codes))
    for coupon in coupons:
        _coupon(state, coupon, member, merchant_id, day, points_balance)
    if points_to_redeem:
        _offset(state, member, rulebook, merchant_id, day, points_to_redeem, points_balance)
    _tier_adjustment(state, member)
    priced = PricedBasket(
        lines=tuple(
            PricedLine(
                x.line,
                x.gross,
                x.rate,
                x.tier,
                x.coupon,
                x.offset,
                x.net,
                FULL_RATE,
                x.eligible,
                0,
                0,
                x.points_spent,
                x.promotion,
            )
            for x in state.lines
        ),
        total_gross=sum(x.gross for x in state.lines),
        total_tier_discount=sum(x.tier for x in state.lines),
        total_coupon_discount=sum(x.coupon for x in state.lines),
        total_promotion_discount=sum(x.promotion for x in state.lines),
        total_offset=sum(x.offset for x in state.lines),
        total_due=sum(x.net for x in state.lines),
        points_redeemed=state.points_spent,
        points_earned=0,
        growth_earned=0,
        coupons_applied=tuple(state.coupons),
        adjustments=tuple(state.adjustments),
        notices=tuple(state.notices),
        rulebook_version=rulebook.version,
    )
    if not earn:
        return priced
    return with_earning(priced, member or earn_as, rulebook, merchant_id, day=day, payments=payments)


def with_earning(
    priced: PricedBasket,
    earner: MemberEntry | None,
    rulebook: Rulebook,
    merchant_id: str,
    *,
    day: date,
    payments: Sequence[Payment] = (),
) -> PricedBasket:
    """``priced`` with its earning worked out for ``earner`` and the payments known now.

    Also how a basket whose price was frozen (a payment is held against it)
    learns what its payments earn, without being priced again.
    """
    lines = [EarningLine(p.line.category, p.eligible, p.net, p.offset, p.line.merchant) for p in priced.lines]
    if earner is None:
        result = nothing(len(lines))
    else:
        result = earn(lines, payments_for(priced.total_due, payments), rulebook, merchant_id, day, earner.tier)
    return replace(
        priced,
        lines=tuple(
            replace(p, points=pts, growth=g, multiplier=m)
            for p, pts, g, m in zip(priced.lines, result.points, result.growth, result.multipliers, strict=True)
        ),
        points_earned=result.total_points,
        growth_earned=result.total_growth,
        earned_by=result.by_payment,
    )


def _tier(state: _State, member: MemberEntry | None, rulebook: Rulebook, merchant_id: str) -> None:
    tier = rulebook.tiers.get(member.tier) if member is not None else None
    if tier is None:
        return
    for x in state.lines:
        if x.eligible:
            x.rate = tier.rate_for(state.at(x), x.line.category)
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
    if c.merchants and not ({state.at(x) for x in state.lines} or {merchant_id}) & c.merchants:
        return refuse("not valid at this shop")
    if c.coupon_id in state.coupons:
        return refuse("already applied to this basket")
    if state.no_coupons is not None:
        return refuse(f"cannot be combined with the promotion {state.no_coupons}")
    if state.coupons and (c.exclusive or state.exclusive):
        return refuse("cannot be combined with another coupon")
    scope = [
        x
        for x in state.lines
        if x.eligible
        and (not c.categories or x.line.category in c.categories)
        and (not c.merchants or state.at(x) in c.merchants)
    ]
    if c.kind == "exchange":
        scope = exchange_scope(scope, c)
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
        x.points_spent += points
    per_line = _spread(scope, amount, "coupon")
    state.points_spent += points
    state.coupons.append(c.coupon_id)
    state.exclusive = state.exclusive or c.exclusive
    kind = "exchange" if c.kind == "exchange" else "coupon"
    state.adjustments.append(Adjustment(kind, c.coupon_id, c.name or c.coupon_id, amount, per_line, points))
    return None


def exchange_scope(scope: list[_Line], c: CouponDefinition) -> list[_Line]:
    """The one line an exchange coupon takes a unit of: the first with its item."""
    return [x for x in scope if x.line.sku == c.sku][:1]


def offset_units(points_per_yuan: int) -> tuple[int, int]:
    """The smallest whole exchange of the offset rule: ``(points, fen)``, e.g. (100, 1) or (3, 1)."""
    g = gcd(points_per_yuan, 100)
    return points_per_yuan // g, 100 // g


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
    refusals = {m: rule.allowed(day, m) for m in {state.at(x) for x in state.lines} | {merchant_id}}
    targets = [x for x in state.lines if x.eligible and x.net > 0 and refusals[state.at(x)] is None]
    if not targets and (reason := refusals[merchant_id] or next((r for r in refusals.values() if r), None)):
        state.notices.append(reason)
        return
    unit_points, unit_fen = offset_units(rule.points_per_yuan)
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
    for x, spent in zip(targets, allocate(points, [per_line.get(x.line.line_id, 0) for x in targets]), strict=True):
        x.points_spent += spent
    state.points_spent += points
    state.adjustments.append(Adjustment("offset", "offset", f"{points} points", fen, per_line, points))


def _promotions(
    state: _State,
    member: MemberEntry | None,
    rulebook: Rulebook,
    merchant_id: str,
    day: date,
    minute: int | None,
    codes: frozenset[str],
) -> None:
    """Member prices, then bundles, then spend thresholds: each in the rulebook's order."""
    tier = member.tier if member is not None else None
    live = []
    merchants = sorted({state.at(x) for x in state.lines}) or [merchant_id]
    for p in rulebook.promotions:
        # Live where it runs at one of the basket's merchants; each line is then taken where it runs.
        refusals = [p.refusal(day, minute, m, tier, codes) for m in merchants]
        if why := (None if None in refusals else refusals[0]):
            if p.code is not None and p.code in codes:
                state.notices.append(f"promotion {p.name or p.promotion_id}: {why}")
            continue
        live.append(p)
    _member_prices(state, [p for p in live if p.kind == "member_price"])
    for p in live:
        if p.kind == "bundle":
            _bundle(state, p)
    for p in live:
        if p.kind == "spend":
            _spend(state, p, codes)


def _given(state: _State, p: Promotion, per_line: dict[int, int]) -> None:
    amount = sum(per_line.values())
    if not amount:
        return
    state.adjustments.append(Adjustment("promotion", p.promotion_id, p.name or p.promotion_id, amount, per_line))
    if not p.stack_with_coupons and state.no_coupons is None:
        state.no_coupons = p.name or p.promotion_id


def _member_prices(state: _State, promotions: list[Promotion]) -> None:
    """Each line at the best member price any promotion gives it, where that beats its tier discount;
    such a line then has no tier discount (the better of the two, never both)."""
    given: dict[str, dict[int, int]] = {}
    for x in state.lines:
        offers = [
            (p.prices[x.line.sku] * x.line.quantity, i)
            for i, p in enumerate(promotions)
            if x.eligible and x.line.sku in p.prices and state.covers(p, x)
        ]
        if not offers:
            continue
        target, best = min(offers)
        if target >= x.net:
            continue  # the tier discount is better
        x.tier, x.rate = 0, FULL_RATE
        x.promotion = x.gross - target
        given.setdefault(promotions[best].promotion_id, {})[x.line.line_id] = x.promotion
    for p in promotions:
        _given(state, p, given.get(p.promotion_id, {}))


def _bundle(state: _State, p: Promotion) -> None:
    eligible = [x for x in state.lines if x.eligible and x.net > 0]
    scope = [x for x in eligible if state.covers(p, x) and x.line.sku != p.free_sku]
    runs_at = [x for x in eligible if not p.merchants or state.at(x) in p.merchants]
    gifts = [x for x in runs_at if p.free_sku and x.line.sku == p.free_sku]
    targets = scope + gifts
    counts = bundle_free(p, [x.goods for x in scope], [x.goods for x in gifts])
    value = sum(units_value(x.goods, n) for x, n in zip(targets, counts, strict=True) if n)
    if value:
        _given(state, p, _spread([x for x in targets if x.net > 0], value, "promotion"))


def _spend(state: _State, p: Promotion, codes: frozenset[str]) -> None:
    scope = [x for x in state.lines if x.eligible and x.net > 0 and state.covers(p, x)]
    base = sum(x.net for x in scope)
    off = spend_off(p, base)
    if off:
        _given(state, p, _spread(scope, off, "promotion"))
    elif p.code is not None and p.code in codes:
        needed = next_step(p, base)
        needs = f"needs {format_cny(needed)} of qualifying items" if needed else "gives nothing here"
        state.notices.append(f"promotion {p.name or p.promotion_id}: {needs}, the basket has {format_cny(base)}")
