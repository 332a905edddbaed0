"""The contract's answers (``gateway/api/contract.py``) built from baskets, prices, payments and sales."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.api import contract as c
from gateway.payments.messages import payment_view as payment_json
from gateway.sale.basket import Basket
from offline_queue.payments import PaymentIntent
from protocols.pricing import PricedBasket, receipt_lines


def basket_view(basket: Basket, priced: PricedBasket, topup_bonus: int = 0) -> c.BasketView:
    match = basket.member
    return c.BasketView(
        basket_id=basket.basket_id,
        state=basket.state,
        member=None
        if match is None
        else c.MemberView(member_id=match.member.member_id, tier=match.member.tier, via=match.via, weak=match.weak),
        lines=[
            c.PricedLineView(
                line_id=p.line.line_id,
                sku=p.line.sku,
                name=p.line.name,
                category=p.line.category,
                quantity=p.line.quantity,
                unit_price=p.line.unit_price,
                gross=p.gross,
                rate=p.rate,
                discount=p.discount,
                tier_discount=p.tier_discount,
                coupon_discount=p.coupon_discount,
                offset=p.offset,
                net=p.net,
                promotion_discount=p.promotion_discount,
                merchant=p.line.merchant,
            )
            for p in priced.lines
        ],
        total_gross=priced.total_gross,
        total_discount=priced.total_discount,
        total_due=priced.total_due,
        total_tier_discount=priced.total_tier_discount,
        total_coupon_discount=priced.total_coupon_discount,
        total_offset=priced.total_offset,
        points_earned=priced.points_earned,
        growth_earned=priced.growth_earned,
        points_redeemed=priced.points_redeemed,
        points_available=basket.points_available,
        coupons=[
            c.CouponView(
                coupon_id=h.definition.coupon_id,
                name=h.definition.name,
                applied=h.definition.coupon_id in priced.coupons_applied,
            )
            for h in basket.coupons
        ],
        breakdown=receipt_lines(priced),
        notices=list(priced.notices),
        rulebook_version=priced.rulebook_version,
        txn_id=basket.txn_id,
        payments=[payment_view(p) for p in basket.payments],
        left_to_pay=basket.left_to_pay(priced.total_due),
        topup=basket.topup,
        topup_bonus=topup_bonus,
        total_promotion_discount=priced.total_promotion_discount,
        promotions=[
            c.PromotionView(promotion_id=a.rule, name=a.label, amount=a.amount)
            for a in priced.adjustments
            if a.kind == "promotion"
        ],
        promo_codes=list(basket.promo_codes),
        membership=basket.membership,
    )


def payment_view(p: PaymentIntent) -> c.PaymentView:
    return msgspec.convert(payment_json(p), c.PaymentView)


def answer(body: msgspec.Struct | dict[str, Any], status: int = 200) -> web.Response:
    """An answer of the contract (a model, or the status document the model describes), as JSON."""
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")
