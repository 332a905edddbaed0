"""A priced basket as the sale record that carries it (format version 2): one builder, for the till and the checks."""

from __future__ import annotations

from protocols.pricing.model import PricedBasket
from protocols.records import RECORD_VERSION, Benefit, RecordLine, Tender, TransactionRecord


def record_lines(priced: PricedBasket) -> tuple[RecordLine, ...]:
    """Each line with its money and its share of the benefits: what a refund of its units gives back."""
    return tuple(
        RecordLine(
            p.line.sku,
            p.line.name,
            p.line.category,
            p.line.quantity,
            p.line.unit_price,
            p.gross,
            p.discount,
            p.net,
            offset=p.offset,
            points=p.points,
            growth=p.growth,
            points_spent=p.points_spent,
            merchant=p.line.merchant,
        )
        for p in priced.lines
    )


def sale_record(
    priced: PricedBasket,
    *,
    txn_id: str,
    terminal_id: str,
    store_id: str,
    merchant_id: str,
    currency: str,
    created_at: str,
    tenders: tuple[Tender, ...],
    change: int,
    member_id: str | None,
    member_via: str | None,
    member_tier: str | None,
    offline: bool,
    coupons: tuple[str, ...],
    reservation: str | None = None,
    seq: int = 0,
    promo_codes: tuple[str, ...] = (),
) -> TransactionRecord:
    """The sale ``priced`` was paid as (``seq`` is the journal's to give): what the till signs, the ledger re-checks."""
    return TransactionRecord(
        txn_id=txn_id,
        terminal_id=terminal_id,
        seq=seq,
        kind="sale",
        created_at=created_at,
        store_id=store_id,
        merchant_id=merchant_id,
        currency=currency,
        lines=record_lines(priced),
        total_gross=priced.total_gross,
        total_discount=priced.total_discount,
        total_due=priced.total_due,
        tenders=tenders,
        change=change,
        member_id=member_id,
        member_via=member_via,
        points_earned=priced.points_earned,
        rulebook_version=priced.rulebook_version,
        offline=offline,
        coupons=coupons,
        points_redeemed=priced.points_redeemed,
        growth_earned=priced.growth_earned,
        reservation=reservation,
        version=RECORD_VERSION,
        member_tier=member_tier,
        benefits=tuple(Benefit(a.kind, a.rule, a.amount) for a in priced.adjustments if a.amount),
        promo_codes=promo_codes,
    )
