"""A priced basket's lines as a sale record carries them (format version 2)."""

from __future__ import annotations

from protocols.pricing.model import PricedBasket
from protocols.records import RecordLine


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
        )
        for p in priced.lines
    )
