"""What the ledger re-derives from a record before it lets the record move a balance.

A terminal's signature says which terminal made a record, not that the
record is true: a till that is lost, cloned or tampered with signs whatever
it is told to. So the ledger believes nothing it can check for itself
(``docs/protocols/sync.md``, the trust model):

- **The shop.** The record's store and merchant are the ones the terminal was
  enrolled for (merchant decides tier rates, and settlement); a line sold for
  a counter names one the terminal is a central checkout for.
- **Earning.** Points and growth are computed again with the pure pricing
  code (``protocols/pricing/earning.py``) from the record's lines, the
  rulebook version it names, the mall's business day of its time, how it
  was paid and the tier it names, which must be one the member holds or
  held; version 2 records line by line, version 1 records against the most
  the rulebook could have given.
- **Spending.** Points consumed follow the offset rule (whole units, on an
  allowed day) and the exchange coupons applied. Points and stored value
  spent match a hold the ledger made for that member and terminal
  (``ledger/holds.py``), or stay within the rulebook's offline limits for
  that terminal: per sale, and together with what the terminal had spent
  for the member but not yet synced when it made this record.
- **Refunds.** A refund names a sale the ledger holds, of the same member,
  from the same terminal, or (a return at another till) naming that
  terminal, from a till that asked the ledger for the sale first
  (``ledger/returns_desk.py``). It is planned again (``protocols/refunds.py``)
  from that sale and every refund of it before, from any till, and must give
  back exactly what its units took and earned, to tenders the sale used,
  never more than remains.
- **Benefits.** What each benefit took off a sale (tier, promotions, coupons,
  exchanges, offset) is priced again from its lines, tier, shop, time, promo
  codes, coupons and offset (``ledger/benefit_check.py``): a mall-funded
  discount is money the mall owes the tenant.
- **Paid tiers.** A tier sold as its rulebook version sells it (its price), to
  a member the ledger knows; refunded only within its window (the refund is
  planned again with it).
- **Top-ups.** Stored value sold as the rulebook sells it (amount, tenders,
  the bonus step), to a member the ledger knows, made no longer ago than a
  till may be offline, and within the till's daily cap: a till's credentials
  alone mint no more than that cap a day before a cash count notices.
- **Joins.** A till enrols a customer only as a member of its own making
  (``J-<terminal>-<n>``), in the rulebook's joining tier, once
  (``ledger/joins.py`` creates the member or merges them into the one who
  carries the phone number already).

A record that fails is *quarantined* by the caller: kept with its chain,
never applied, raised as an alert, until an operator releases or rejects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from ledger.benefit_check import benefits_refusal
from ledger.gift_card_check import gift_card_refusal
from ledger.gift_cards import Card
from ledger.holds import Hold
from protocols.business_day import business_day, parse_instant
from protocols.errors import GatewayError
from protocols.gift_cards import loads
from protocols.money import FULL_RATE, allocate
from protocols.paid_tiers import tier_sold
from protocols.pricing.earning import EarningLine, earn, payments_of
from protocols.pricing.engine import offset_units
from protocols.records import TransactionRecord, made_by
from protocols.refunds import plan_refund, plan_topup_refund, tenders_given_back
from protocols.rulebook import Rulebook
from protocols.shifts import EVENT_KINDS


@dataclass(frozen=True, slots=True)
class Shop:
    """What a terminal was enrolled for (None: enrolled before enrolment said so)."""

    store_id: str | None
    merchant_id: str | None
    counters: frozenset[str] = frozenset()  # a central checkout: the merchants its lines may be sold for


@dataclass(frozen=True, slots=True)
class MemberView:
    tier: str
    tiers_held: frozenset[str]  # the tier now and every tier the member's history names


@dataclass(frozen=True, slots=True)
class Unheld:
    """What a terminal spent for a member without a hold, in records the ledger had not received yet
    when this record was made: the offline limits count it."""

    points: int = 0
    point_sales: int = 0
    fen: int = 0


@dataclass
class Context:
    shop: Shop
    rules: Callable[[int], Rulebook | None]
    member: MemberView | None  # None: no member, or one the ledger does not know (nothing is posted)
    holds: dict[str, Hold]
    unheld: Unheld = field(default_factory=Unheld)
    sale: TransactionRecord | None = None  # a refund's sale, as the ledger holds it
    sale_state: str | None = None
    asked_for_sale: bool = False  # a return at another till: this terminal asked the ledger for the sale
    earlier: list[TransactionRecord] = field(default_factory=list)  # refunds of that sale before this one
    topped_up: int = 0  # a top-up: what its terminal sold in top-ups on its business day before it (fen)
    wallet_own: int = 0  # a top-up's refund: the member's stored value less every bonus still to spend (fen)
    tiers_sold: int = 0  # a paid tier: how many of it its terminal sold on its business day before it
    cards: dict[str, Card] = field(default_factory=dict)  # the gift cards the record loads or spends
    cards_loaded: int = 0  # what its terminal loaded onto gift cards on its business day before it (fen)
    cards_unheld: dict[str, int] = field(default_factory=dict)  # card -> spent at its terminal with no hold, unseen
    received: float = 0.0  # when the ledger received the record (Unix seconds)


@dataclass(frozen=True, slots=True)
class Verdict:
    refusal: str | None
    offset_points: int = 0  # of the points the record spends, those paid as offset (the rest: exchanges)


def check(r: TransactionRecord, ctx: Context) -> Verdict:
    """Whether the ledger can believe ``r``: a refusal to quarantine it with, or None."""
    try:
        if (refusal := _shop(r, ctx)) is not None:
            return Verdict(refusal)
        book = ctx.rules(r.rulebook_version)
        if book is None:
            return Verdict(f"it names rulebook version {r.rulebook_version}, which this ledger never issued")
        if r.kind in ("sale", "refund", "void") and (refusal := _gift_cards(r, ctx, book)):
            return Verdict(refusal)
        if r.kind == "sale":
            return _sale(r, ctx, book)
        if r.kind == "join":
            return Verdict(_join(r, ctx, book))
        if r.kind == "topup":
            return Verdict(_topup(r, ctx, book))
        if r.kind in EVENT_KINDS:  # nothing moves; who did it is re-checked in ``ledger/staff_check.py``
            return Verdict(None)
        return Verdict(_refund(r, ctx, book))
    except GatewayError as err:  # a figure the pricing code itself refuses (money that cannot add up)
        return Verdict(f"its figures cannot be worked out: {err}")


def _gift_cards(r: TransactionRecord, ctx: Context, book: Rulebook) -> str | None:
    """The record's gift card loads and tenders (``ledger/gift_card_check.py``)."""
    if not ctx.cards and not any(t.kind == "giftcard" for t in r.tenders) and not loads(r.lines):
        return None

    def made_lately() -> str | None:
        return _made_lately(r, ctx, book, "loads gift cards")

    return gift_card_refusal(r, book, ctx.cards, ctx.holds, ctx.cards_loaded, made_lately, ctx.sale, ctx.cards_unheld)


def _shop(r: TransactionRecord, ctx: Context) -> str | None:
    if ctx.shop.store_id is not None and r.store_id != ctx.shop.store_id:
        return f"store {r.store_id}, but terminal {r.terminal_id} is enrolled for store {ctx.shop.store_id}"
    if ctx.shop.merchant_id is not None and r.merchant_id != ctx.shop.merchant_id:
        return f"merchant {r.merchant_id}, but terminal {r.terminal_id} is enrolled for {ctx.shop.merchant_id}"
    for x in r.lines if r.kind == "sale" else ():  # a refund's lines are its sale's (compared in _refund)
        if x.merchant is not None and x.merchant not in ctx.shop.counters:
            return f"a line sold for counter {x.merchant}, which terminal {r.terminal_id} is not a central checkout for"
    return None


def _sale(r: TransactionRecord, ctx: Context, book: Rulebook) -> Verdict:
    if refusal := benefits_refusal(r, book):  # what the mall may owe the tenant: never on a till's word
        return Verdict(refusal)
    if (tier := tier_sold(r)) is not None:
        return Verdict(_tier_sale(r, tier, ctx, book) or _wallet(r, ctx, book))
    if r.member_id is None:
        if r.points_earned or r.growth_earned or r.points_redeemed:
            return Verdict("it earns or spends points with no member")
        return Verdict(_wallet(r, ctx, book))
    if ctx.member is None:  # a member the ledger does not know: nothing of theirs moves
        return Verdict(None)
    day = business_day(r.created_at, book.zone)
    if r.version >= 2:
        refusal = _earning(r, ctx.member, book, day)
        spent = _spent(r, book, day)
        refusal = refusal or (spent if isinstance(spent, str) else None)
        offset_points = spent if isinstance(spent, int) else 0
    else:
        refusal, offset_points = _earning_bound(r, ctx.member, book, day), 0
    refusal = refusal or _points_spend(r, ctx, book) or _wallet(r, ctx, book)
    return Verdict(refusal, offset_points)


def _join(r: TransactionRecord, ctx: Context, book: Rulebook) -> str | None:
    """A till enrols a customer (``ledger/joins.py``): only as a member of its own making, in the joining
    tier, once. The schema already holds it to no lines, tenders, points or coupons."""
    assert r.member_id is not None
    if not made_by(r.member_id, r.terminal_id):
        return f"it enrols member {r.member_id}; terminal {r.terminal_id} makes only J-{r.terminal_id}-<n>"
    if r.member_tier != book.joining_tier:
        return (
            f"it starts its member in tier {r.member_tier}; rulebook version {r.rulebook_version} starts "
            f"those who join in {book.joining_tier}"
        )
    if ctx.member is not None:
        return f"member {r.member_id} was enrolled already"
    return None


def _tier_sale(r: TransactionRecord, tier: str, ctx: Context, book: Rulebook) -> str | None:
    """A paid tier (``protocols/paid_tiers.py``): one the rulebook version sells, at its price, to a member the
    ledger knows (the schema holds it to one line, no discount, nothing earned)."""
    sold = book.tiers.get(tier)
    if sold is None or sold.price is None:
        return f"it sells tier {tier}, which rulebook version {r.rulebook_version} does not sell"
    if r.total_due != sold.price:
        return f"it sells tier {tier} for {r.total_due} fen; rulebook version {r.rulebook_version} asks {sold.price}"
    if ctx.member is None:
        return f"it sells tier {tier} to member {r.member_id}, whom the ledger does not know"
    if ctx.tiers_sold + 1 > sold.daily_cap:
        day = business_day(r.created_at, book.zone)
        return f"it is terminal {r.terminal_id}'s {ctx.tiers_sold + 1}th {tier} on {day}: the cap is {sold.daily_cap}"
    return _made_lately(r, ctx, book, f"sells tier {tier}")


def _made_lately(r: TransactionRecord, ctx: Context, book: Rulebook, what: str) -> str | None:
    """A sale a till's word alone makes (its cash): made no longer ago than a till may be offline, so that
    backdating cannot spread it over days whose caps were not used."""
    age = ctx.received - parse_instant(r.created_at).timestamp()
    if not -TOPUP_CLOCK_SKEW <= age <= book.risk.max_offline_hours * 3600 + TOPUP_CLOCK_SKEW:
        return (
            f"it was made {age / 3600:.1f} h before the ledger received it; a till {what} at most "
            f"{book.risk.max_offline_hours:g} h offline"
        )
    return None


TOPUP_CLOCK_SKEW = 3600.0  # seconds a till's clock may be off the ledger's, either way


def _topup(r: TransactionRecord, ctx: Context, book: Rulebook) -> str | None:
    """A sale of stored value (``protocols/stored_value.py``): as the rulebook sells it, to a member the
    ledger knows, within the till's daily cap, and made no longer ago than a till may sell offline (so
    that backdating cannot spread a till's top-ups over days it never sold on)."""
    rule = book.stored_value
    if rule is None:
        return f"it sells stored value, which rulebook version {r.rulebook_version} does not offer"
    if ctx.member is None:
        return f"it tops up member {r.member_id}, whom the ledger does not know"
    if why := rule.refusal(r.total_due, [t.kind for t in r.tenders]):
        return f"it sells stored value where its rulebook says: {why}"
    if r.bonus != (due := rule.bonus_for(r.total_due)):
        return (
            f"it gives a bonus of {r.bonus} fen; rulebook version {r.rulebook_version} gives {due} fen "
            f"for a top-up of {r.total_due} fen"
        )
    if refusal := _made_lately(r, ctx, book, "sells stored value"):
        return refusal
    if ctx.topped_up + r.total_due > rule.terminal_daily_cap:
        day = business_day(r.created_at, book.zone)
        return (
            f"it takes terminal {r.terminal_id}'s top-ups on {day} to {ctx.topped_up + r.total_due} fen, past "
            f"the rulebook's daily cap of {rule.terminal_daily_cap} fen"
        )
    return None


def _lines(r: TransactionRecord, book: Rulebook) -> list[EarningLine]:
    return [EarningLine(x.category, x.category not in book.no_benefit, x.net, x.offset, x.merchant) for x in r.lines]


def _earning(r: TransactionRecord, member: MemberView, book: Rulebook, day: date) -> str | None:
    if r.member_tier is None or r.member_tier not in member.tiers_held:
        return f"it was priced at tier {r.member_tier}, which member {r.member_id} does not and did not hold"
    payments = payments_of([(t.kind, t.amount) for t in r.tenders], r.change)
    result = earn(_lines(r, book), payments, book, r.merchant_id, day, r.member_tier)
    claimed = ([x.points for x in r.lines], [x.growth for x in r.lines])
    if claimed != (list(result.points), list(result.growth)):
        return (
            f"it earns {r.points_earned} points and {r.growth_earned} growth; rulebook version "
            f"{r.rulebook_version} gives {result.total_points} and {result.total_growth} for its lines"
        )
    return None


def _earning_bound(r: TransactionRecord, member: MemberView, book: Rulebook, day: date) -> str | None:
    """A version 1 record says only its totals: never more than the rulebook could have given."""
    rule = book.earn
    methods = {None, *(t.kind for t in r.tenders)}
    weighted = growth = 0
    for x in r.lines:
        if x.category in book.no_benefit:
            continue
        base = x.net + (x.discount if rule.on_offset else 0)
        mult = max(
            [int(FULL_RATE)]
            + [
                c.multiplier
                for c in book.campaigns
                for tier in member.tiers_held
                for method in methods
                if c.applies(day, r.merchant_id, x.category, tier, method)
            ]
        )
        weighted += base * mult
        growth += base
    most, most_growth = weighted // (FULL_RATE * rule.fen_per_point), growth // rule.fen_per_growth
    if r.points_earned > most or r.growth_earned > most_growth:
        return (
            f"it earns {r.points_earned} points and {r.growth_earned} growth; rulebook version "
            f"{r.rulebook_version} gives at most {most} and {most_growth} for its lines"
        )
    return None


def _spent(r: TransactionRecord, book: Rulebook, day: date) -> str | int:
    """Version 2: each line's points consumed follow the offset rule and the exchanges applied;
    the refusal, or the points paid as offset."""
    offset_fen = sum(x.offset for x in r.lines)
    offset_points = 0
    if offset_fen:
        rule = book.offset
        if rule is None:
            return "it pays with points, which its rulebook version does not offer"
        if reason := rule.allowed(day, r.merchant_id):
            return f"it pays with points where its rulebook says: {reason}"
        unit_points, unit_fen = offset_units(rule.points_per_yuan)
        if offset_fen % unit_fen:
            return f"{offset_fen} fen paid with points is not a whole number of {unit_fen}-fen units"
        offset_points = offset_fen // unit_fen * unit_points
    expected = allocate(offset_points, [x.offset for x in r.lines]) if offset_fen else [0] * len(r.lines)
    for instance in r.coupons:
        coupon = book.coupons.get(instance.partition(":")[0])
        if coupon is None or coupon.kind != "exchange":
            continue
        scope = [
            i
            for i, x in enumerate(r.lines)
            if x.category not in book.no_benefit
            and (not coupon.categories or x.category in coupon.categories)
            and x.sku == coupon.sku
        ]
        if scope:
            expected[scope[0]] += coupon.points
    if [x.points_spent for x in r.lines] != expected:
        return f"it spends {r.points_redeemed} points; its offset and exchanges come to {sum(expected)}"
    return offset_points


def offset_points(r: TransactionRecord, book: Rulebook) -> int:
    """The points a record paid as offset (as its rulebook converts its lines' offset fen); 0 if it cannot say."""
    offset_fen = sum(x.offset for x in r.lines)
    if r.version < 2 or not offset_fen or book.offset is None:
        return 0
    unit_points, unit_fen = offset_units(book.offset.points_per_yuan)
    return offset_fen // unit_fen * unit_points


def _points_spend(r: TransactionRecord, ctx: Context, book: Rulebook) -> str | None:
    if not r.points_redeemed:
        return None
    if r.reservation is not None:
        hold = ctx.holds.get(r.reservation)
        if not _holds_for(hold, r, "points", r.points_redeemed):
            return f"it spends {r.points_redeemed} points on a hold the ledger did not make for it"
        return None
    risk = book.risk
    if r.points_redeemed > risk.max_points_per_sale:
        return f"it spends {r.points_redeemed} points with no hold: the offline limit is {risk.max_points_per_sale}"
    if (
        ctx.unheld.points + r.points_redeemed > risk.max_member_points
        or ctx.unheld.point_sales + 1 > risk.max_member_sales
    ):
        return (
            f"with no hold, this terminal had spent {ctx.unheld.points} points of this member on "
            f"{ctx.unheld.point_sales} sales not yet synced: past the offline limits"
        )
    return None


def _wallet(r: TransactionRecord, ctx: Context, book: Rulebook) -> str | None:
    risk = book.risk
    unheld = ctx.unheld.fen
    for t in (t for t in r.tenders if t.kind == "wallet"):
        hold = ctx.holds.get(t.ref or "")
        if hold is not None:
            if not _holds_for(hold, r, "fen", t.amount):
                return f"stored value {t.ref} was held by the ledger for another member, terminal or amount"
            continue
        if t.amount > risk.max_wallet_per_sale or unheld + t.amount > risk.max_member_wallet:
            return (
                f"it pays {t.amount} fen from stored value with no hold, past the offline limits "
                f"({risk.max_wallet_per_sale} a sale, {risk.max_member_wallet} a member at a till)"
            )
        unheld += t.amount
    return None


def _holds_for(hold: Hold | None, r: TransactionRecord, unit: str, amount: int) -> bool:
    return (
        hold is not None
        and hold.unit == unit
        and hold.member_id == r.member_id
        and hold.terminal_id == r.terminal_id
        and amount <= hold.amount
        and (hold.state == "pending" or (hold.state == "posted" and hold.posted_by == r.txn_id))
    )


def _refund(r: TransactionRecord, ctx: Context, book: Rulebook) -> str | None:
    sale = ctx.sale
    if sale is None:
        return f"it refunds sale {r.refund_of}, which the ledger does not hold"
    if ctx.sale_state != "applied":
        return f"it refunds sale {sale.txn_id}, which is {ctx.sale_state} here"
    if r.sale_terminal is not None and r.sale_terminal != sale.terminal_id:
        return f"it names terminal {r.sale_terminal} as the sale's; sale {sale.txn_id} is terminal {sale.terminal_id}'s"
    if sale.terminal_id != r.terminal_id and r.sale_terminal is None:
        return f"it refunds sale {sale.txn_id} of terminal {sale.terminal_id} without naming it (sale_terminal)"
    if sale.terminal_id != r.terminal_id and not ctx.asked_for_sale:
        return f"it returns sale {sale.txn_id} of terminal {sale.terminal_id}, which it never asked the ledger for"
    if sale.member_id != r.member_id:
        return f"it names member {r.member_id}; the sale was {sale.member_id}'s"
    if sale.kind == "topup":
        return _topup_refund(r, sale, ctx)
    wanted: dict[int, int] = {}
    for x in r.lines:
        if x.refund_line in wanted:
            return f"it names line {x.refund_line} of the sale twice"
        wanted[x.refund_line] = x.quantity
    try:
        expected = plan_refund(
            sale,
            ctx.earlier,
            None if r.kind == "void" else wanted,  # a void is the whole sale: its lines are compared below
            rulebook=book,
            today=business_day(r.created_at, book.zone),
            draft_fields={f: getattr(r, f) for f in ("txn_id", "terminal_id", "seq", "created_at", "offline")},
            void=r.kind == "void",
        )
    except GatewayError as err:
        return f"it cannot be a refund of sale {sale.txn_id}: {err}"
    mine = [(x.refund_line, x.quantity, x.gross, x.net, x.merchant) for x in r.lines]
    if mine != [(x.refund_line, x.quantity, x.gross, x.net, x.merchant) for x in expected.lines]:
        return "its money per line is not what the refunded units were paid"
    if r.version >= 2 and [(x.points, x.growth, x.points_spent, x.offset) for x in r.lines] != [
        (x.points, x.growth, x.points_spent, x.offset) for x in expected.lines
    ]:
        return "its points per line are not what the refunded units earned and consumed"
    figures = ("points_clawback", "points_returned", "growth_clawback", "total_due")
    if any(getattr(r, f) != getattr(expected, f) for f in figures):
        got = ", ".join(f"{f} {getattr(r, f)}" for f in figures)
        want = ", ".join(f"{f} {getattr(expected, f)}" for f in figures)
        return f"it gives back {got}; the refunded units come to {want}"
    if not set(r.coupons_restored) <= set(expected.coupons_restored):
        return "it restores coupons its sale did not redeem, or before the sale is refunded in full"
    return _tenders_refusal(r, sale, ctx.earlier)


def _tenders_refusal(r: TransactionRecord, sale: TransactionRecord, earlier: list[TransactionRecord]) -> str | None:
    """A refund gives money back to the sale's non-cash tenders no more than each has left to give."""
    left = {(t.kind, t.ref): t.amount for t in sale.tenders if t.kind != "cash"}
    for key, given in tenders_given_back(earlier).items():
        if key in left:
            left[key] -= given
    for t in (t for t in r.tenders if t.kind != "cash"):
        if t.amount > left.get((t.kind, t.ref), 0):
            return f"it gives {t.amount} fen back to {t.kind} {t.ref}, more than that tender has left to give"
        left[(t.kind, t.ref)] -= t.amount
    return None


def _topup_refund(r: TransactionRecord, topup: TransactionRecord, ctx: Context) -> str | None:
    """Stored value given back: no more than is left of the top-up, nor than the member holds as their own
    money (never a bonus turned into cash), taken on a hold the ledger made for it (so nothing spent
    elsewhere meanwhile is given back twice), paid back the way the top-up was paid."""
    try:
        expected = plan_topup_refund(
            topup,
            ctx.earlier,
            r.total_due,
            r.reservation or "",
            rulebook_version=r.rulebook_version,
            draft_fields={f: getattr(r, f) for f in ("txn_id", "terminal_id", "seq", "created_at", "offline")},
        )
    except GatewayError as err:
        return f"it cannot be a refund of top-up {topup.txn_id}: {err}"
    if r.kind != "refund" or r.lines != expected.lines or r.coupons_restored:
        return "a top-up is given back as one line of stored value, at what is given back"
    if not _holds_for(ctx.holds.get(r.reservation or ""), r, "fen", r.total_due):
        return f"it takes {r.total_due} fen of stored value back on a hold the ledger did not make for it"
    if r.total_due > ctx.wallet_own:
        return (
            f"it gives back {r.total_due} fen; member {r.member_id} holds {ctx.wallet_own} fen of their own "
            "stored value (a bonus is never given back as money)"
        )
    return _tenders_refusal(r, topup, ctx.earlier)
