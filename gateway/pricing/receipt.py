"""The breakdown a customer reads: which rule gave what, in fen rendered as ¥."""

from __future__ import annotations

from gateway.pricing.model import PricedBasket
from protocols.money import format_cny


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
    out.extend(f"note: {n}" for n in priced.notices)
    return out
