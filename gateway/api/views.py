"""JSON views of baskets, prices and sales for the local API."""

from __future__ import annotations

from typing import Any

from gateway.payments.messages import payment_view
from gateway.sale.basket import Basket
from protocols.pricing import PricedBasket, receipt_lines
from protocols.records import TransactionRecord


def basket_view(basket: Basket, priced: PricedBasket) -> dict[str, Any]:
    member = basket.member
    return {
        "basket_id": basket.basket_id,
        "state": basket.state,
        "member": None
        if member is None
        else {
            "member_id": member.member.member_id,
            "tier": member.member.tier,
            "via": member.via,
            "weak": member.weak,
        },
        "lines": [
            {
                "line_id": p.line.line_id,
                "sku": p.line.sku,
                "name": p.line.name,
                "category": p.line.category,
                "quantity": p.line.quantity,
                "unit_price": p.line.unit_price,
                "gross": p.gross,
                "rate": p.rate,
                "discount": p.discount,
                "tier_discount": p.tier_discount,
                "coupon_discount": p.coupon_discount,
                "offset": p.offset,
                "net": p.net,
            }
            for p in priced.lines
        ],
        "total_gross": priced.total_gross,
        "total_discount": priced.total_discount,
        "total_due": priced.total_due,
        "total_tier_discount": priced.total_tier_discount,
        "total_coupon_discount": priced.total_coupon_discount,
        "total_offset": priced.total_offset,
        "points_earned": priced.points_earned,
        "growth_earned": priced.growth_earned,
        "points_redeemed": priced.points_redeemed,
        "points_available": basket.points_available,
        "coupons": [
            {
                "coupon_id": c.definition.coupon_id,
                "name": c.definition.name,
                "applied": c.definition.coupon_id in priced.coupons_applied,
            }
            for c in basket.coupons
        ],
        "breakdown": receipt_lines(priced),
        "notices": list(priced.notices),
        "rulebook_version": priced.rulebook_version,
        "txn_id": basket.txn_id,
        "payments": [payment_view(p) for p in basket.payments],
        "left_to_pay": priced.total_due - sum(p.amount for p in basket.payments_held()),
    }


def sale_view(record: TransactionRecord, replayed: bool) -> dict[str, Any]:
    return {"replayed": replayed, "record": record.to_wire()}
