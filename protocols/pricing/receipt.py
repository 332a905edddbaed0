"""The breakdown a customer reads: which rule gave what, in fen rendered as ¥, and what each tender earned."""

from __future__ import annotations

from protocols.money import format_cny
from protocols.pricing.earning import OFFSET_METHOD
from protocols.pricing.model import PricedBasket

_PAID_BY = {None: "not paid yet", OFFSET_METHOD: "paid with points"}


def receipt_lines(priced: PricedBasket) -> list[str]:
    out = []
    for p in priced.lines:
        line = p.line
        out.append(f"{line.name or line.sku}  {line.quantity} × {format_cny(line.unit_price)}  {format_cny(p.gross)}")
    out.append(f"subtotal  {format_cny(priced.total_gross)}")
    for adj in priced.adjustments:
        spent = f" ({adj.points} points)" if adj.points and adj.kind != "offset" else ""
        out.append(f"  {adj.label}{spent}  -{format_cny(adj.amount)}")
    out.append(f"to pay  {format_cny(priced.total_due)}")
    if priced.points_redeemed:
        out.append(f"points spent  {priced.points_redeemed}")
    if priced.points_earned or priced.growth_earned:
        out.append(f"points earned  {priced.points_earned}   growth  {priced.growth_earned}")
        if len([e for e in priced.earned_by if e.amount]) > 1 or any(e.method for e in priced.earned_by):
            for e in priced.earned_by:
                if e.amount:
                    how = _PAID_BY.get(e.method, e.method)
                    out.append(f"  {how} {format_cny(e.amount)}: {e.points} points")
    out.extend(f"note: {n}" for n in priced.notices)
    return out
