"""The ledger re-derives what a sale's promotions took off (``protocols/promotions.py``).

Promotions are priced before coupons and the points offset, from nothing but
the lines, the tier the basket was priced at, the shop, the mall's day and
time of day and the promo codes the sale names: all in the record. So the
ledger prices the lines again with the rulebook version the record names and
believes the promotions' amounts only when they are the same, rule by rule.
A mall-funded promotion is money the mall pays the tenant (the settlement):
no till's word may set it.

A basket whose price was frozen by a payment keeps that price until it
completes; a promotion limited to hours may have ended in between. The
ledger allows for it: the record's own minute first, then each minute up to
``PRICE_HELD_MINUTES`` before it (no payment waits longer: its deadline is
well below).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from protocols.business_day import business_day, minute_of_day, parse_instant
from protocols.pricing import BasketLine, price
from protocols.records import TransactionRecord
from protocols.rulebook import MemberEntry, Rulebook

PRICE_HELD_MINUTES = 15


def claimed(r: TransactionRecord) -> Counter[str]:
    """Fen taken off by each promotion, as the record says."""
    taken: Counter[str] = Counter()
    for b in r.benefits:
        if b.kind == "promotion":
            taken[b.rule] += b.amount
    return taken


def derived(r: TransactionRecord, book: Rulebook, minutes_before: int = 0) -> Counter[str]:
    """Fen each promotion takes off the record's lines, priced ``minutes_before`` its time."""
    at = parse_instant(r.created_at) - timedelta(minutes=minutes_before)
    # "Pay = member": a member found by their payment earns, but the basket was priced without them.
    tier = r.member_tier if r.member_id is not None and r.member_via != "payment" else None
    member = None if tier is None else MemberEntry(r.member_id or "", tier)
    lines = [BasketLine(i, x.sku, x.name, x.category, x.quantity, x.unit_price) for i, x in enumerate(r.lines, 1)]
    priced = price(
        lines,
        member,
        book,
        r.merchant_id,
        day=business_day(at, book.zone),
        minute=minute_of_day(at, book.zone),
        promo_codes=r.promo_codes,
    )
    taken: Counter[str] = Counter()
    for a in priced.adjustments:
        if a.kind == "promotion":
            taken[a.rule] += a.amount
    return taken


def promotion_refusal(r: TransactionRecord, book: Rulebook) -> str | None:
    """``None`` when the sale's promotions are what its rulebook version gives its lines; else why not."""
    if r.kind != "sale" or not (book.promotions or claimed(r)):
        return None
    said = claimed(r)
    if not r.benefits:
        # A till that names no benefits (made before they were recorded) claims no promotion: whatever
        # its discount, none of it is the mall's to bear.
        return None
    day = business_day(r.created_at, book.zone)
    for minutes in range(PRICE_HELD_MINUTES + 1):
        at = parse_instant(r.created_at) - timedelta(minutes=minutes)
        if minutes and business_day(at, book.zone) != day:
            break
        if derived(r, book, minutes) == said:
            return None
    given = derived(r, book)
    return (
        f"its promotions take {dict(said) or 'nothing'} off; rulebook version {r.rulebook_version} gives "
        f"{dict(given) or 'nothing'} for its lines"
    )
