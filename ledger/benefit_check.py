"""The ledger re-derives what each benefit took off a sale (its ``benefits``: tier, promotions, coupons, exchanges,
the points offset).

The pure pricing code (``protocols/pricing``) gives them from nothing but the
record: its lines, the tier it was priced at, its shop, the mall's day and
time of day, its promo codes, the coupons it redeemed (in the order they were
applied) and the points it paid as offset. So the ledger prices the lines
again with the rulebook version the record names and believes the benefits
only when they are the same, rule by rule. What the mall bears — promotions
it funds, its coupons, the offset — is money the mall owes the tenant (the
settlement): no till's word may set it, nor move a discount from the shop's
tier price to the mall's coupon.

A basket whose price was frozen by a payment keeps that price until it
completes; a promotion limited to hours may have ended in between. The
ledger allows for it: the record's own minute first, then each minute up to
``PRICE_HELD_MINUTES`` before it (no payment waits longer: its deadline is
well below). A record that names no benefits (a till before them) claims
none: its discount counts as the tenant's own.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from protocols.business_day import business_day, minute_of_day, parse_instant
from protocols.pricing import BasketLine, price
from protocols.pricing.engine import offset_units
from protocols.records import Benefit, TransactionRecord
from protocols.rulebook import MemberEntry, Rulebook

PRICE_HELD_MINUTES = 15
ANY_BALANCE = 10**15  # the points balance is the ledger's own check (holds, limits), not pricing's

Benefits = Counter[tuple[str, str]]  # (kind, rule) -> fen


def claimed(r: TransactionRecord) -> Benefits:
    """Fen taken off by each benefit, as the record says."""
    taken: Benefits = Counter()
    for b in r.benefits:
        taken[(b.kind, b.rule)] += b.amount
    return taken


def derived(r: TransactionRecord, book: Rulebook, minutes_before: int = 0) -> Benefits:
    """Fen each benefit takes off the record's lines, priced ``minutes_before`` its time."""
    at = parse_instant(r.created_at) - timedelta(minutes=minutes_before)
    # "Pay = member": a member found by their payment earns, but the basket was priced without them.
    tier = r.member_tier if r.member_id is not None and r.member_via != "payment" else None
    member = None if tier is None else MemberEntry(r.member_id or "", tier)
    lines = [
        BasketLine(i, x.sku, x.name, x.category, x.quantity, x.unit_price, x.merchant) for i, x in enumerate(r.lines, 1)
    ]
    coupons = [c for i in r.coupons if (c := book.coupons.get(i.partition(":")[0])) is not None]
    priced = price(
        lines,
        member,
        book,
        r.merchant_id,
        day=business_day(at, book.zone),
        minute=minute_of_day(at, book.zone),
        promo_codes=r.promo_codes,
        coupons=coupons,
        points_to_redeem=_offset_points(r, book),
        points_balance=ANY_BALANCE,
        earn=False,
    )
    taken: Benefits = Counter()
    for a in priced.adjustments:
        taken[(a.kind, a.rule)] += a.amount
    return taken


def _offset_points(r: TransactionRecord, book: Rulebook) -> int:
    offset_fen = sum(x.offset for x in r.lines)
    if not offset_fen or book.offset is None:
        return 0
    unit_points, unit_fen = offset_units(book.offset.points_per_yuan)
    return offset_fen // unit_fen * unit_points


def benefits_refusal(r: TransactionRecord, book: Rulebook) -> str | None:
    """``None`` when the sale's benefits are what its rulebook version gives its lines; else why not."""
    if r.kind != "sale" or not r.benefits:
        return None
    said = claimed(r)
    day = business_day(r.created_at, book.zone)
    for minutes in range(PRICE_HELD_MINUTES + 1):
        at = parse_instant(r.created_at) - timedelta(minutes=minutes)
        if minutes and business_day(at, book.zone) != day:
            break
        if derived(r, book, minutes) == said:
            return None
    given = derived(r, book)
    return f"its benefits take {_said(said)} off; rulebook version {r.rulebook_version} gives {_said(given)}"


def mall_bears(benefit: Benefit, book: Rulebook | None) -> bool:
    """Whether the mall bears ``benefit`` (else the tenant does): the offset (its points), its coupons and
    exchanges (unless the rulebook's settlement says the tenants bear them), the promotions it funds; never a
    tier price, the shop's own."""
    if benefit.kind in ("offset", "tier"):
        return benefit.kind == "offset"
    if benefit.kind == "promotion":
        found = next((p for p in book.promotions if p.promotion_id == benefit.rule), None) if book else None
        return found is not None and found.funded_by == "mall"
    return (book.settlement.coupons_funded_by if book is not None else "mall") == "mall"


def _said(benefits: Benefits) -> str:
    return ", ".join(f"{kind} {rule} {fen}" for (kind, rule), fen in sorted(benefits.items())) or "nothing"
