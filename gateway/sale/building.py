"""Building a basket: start it, add lines, attach the member, hold coupons, ask to spend points.

Each change is announced to the till as a ``basket`` event.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.errors import ConflictError, PromoCodeUnknownError
from gateway.events import BasketChanged, EventHub
from gateway.members.coupons import HeldCoupon, RedeemedCoupons, check_coupon
from gateway.members.directory import MemberDirectory
from gateway.members.match import MemberMatch
from gateway.members.points import PointsSpending
from gateway.sale.basket import Basket, BasketStore
from gateway.sale.intake import Intake
from protocols.pricing.model import BasketLine
from protocols.promotions import Promotion


class Building:
    def __init__(
        self,
        baskets: BasketStore,
        intake: Intake,
        directory: MemberDirectory,
        redeemed: RedeemedCoupons,
        points: PointsSpending,
        hub: EventHub,
        leeway: int,
        clock: Callable[[], float] = time.time,
        counters: tuple[str, ...] = (),
    ) -> None:
        self.baskets = baskets
        self.intake = intake
        self.directory = directory
        self.redeemed = redeemed
        self.points = points
        self.hub = hub
        self.leeway = leeway
        self.clock = clock
        self.counters = frozenset(counters)  # a central checkout's counters (``[terminal] counters``)

    def new_basket(self, member: MemberMatch | None = None) -> Basket:
        """A new active basket; ``member``: one identified before it was started."""
        self.intake.refuse_if_draining("starts no new baskets")
        self.intake.on_duty()
        basket = self.baskets.create()
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, state=basket.state))
        if member is not None:
            self.attach_member(basket, member)
        return basket

    def add_line(
        self,
        basket: Basket,
        sku: str,
        name: str,
        category: str,
        quantity: int,
        unit_price: int,
        merchant: str | None = None,
    ) -> BasketLine:
        """A line; ``merchant``: at a central checkout, the counter it is sold for (one of ``counters``)."""
        if merchant is not None and merchant not in self.counters:
            where = ", ".join(sorted(self.counters)) or "none: this till is not a central checkout"
            raise ConflictError(f"this till does not sell for counter {merchant} (its counters: {where})")
        line = basket.add_line(sku, name, category, quantity, unit_price, merchant)
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, lines=len(basket.lines)))
        return line

    def remove_line(self, basket: Basket, line_id: int) -> None:
        basket.remove_line(line_id)
        self.hub.publish(
            BasketChanged(basket_id=basket.basket_id, lines=len(basket.lines), corrected=f"line {line_id}")
        )

    def change_quantity(self, basket: Basket, line_id: int, quantity: int) -> BasketLine:
        line = basket.change_quantity(line_id, quantity)
        corrected = f"line {line_id} quantity {quantity}"
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, lines=len(basket.lines), corrected=corrected))
        return line

    def change_price(self, basket: Basket, line_id: int, unit_price: int, approved_by: str | None) -> BasketLine:
        line = basket.change_price(line_id, unit_price, approved_by)
        corrected = f"line {line_id} price {unit_price}"
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, lines=len(basket.lines), corrected=corrected))
        return line

    def detach_member(self, basket: Basket) -> None:
        basket.detach()
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, corrected="member"))

    def drop_coupon(self, basket: Basket, coupon_id: str) -> None:
        basket.drop_coupon(coupon_id)
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, corrected=f"coupon {coupon_id}"))

    def attach_member(self, basket: Basket, match: MemberMatch) -> None:
        basket.attach(match)
        self.hub.publish(
            BasketChanged(basket_id=basket.basket_id, member_id=match.member.member_id, tier=match.member.tier)
        )

    async def add_coupon(self, basket: Basket, token: str) -> HeldCoupon:
        basket.require_open()
        coupon = await check_coupon(token, self.directory, self.redeemed, now=int(self.clock()), leeway=self.leeway)
        basket.hold_coupon(coupon)
        # An exchange coupon spends points: the balance beside the price is refreshed.
        basket.note_balance(await self.points.available(basket.member.member if basket.member else None))
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, coupon=coupon.definition.coupon_id))
        return coupon

    def add_promo_code(self, basket: Basket, text: str) -> Promotion:
        """A promo code typed or scanned: known to the rulebook in force, given to the basket once."""
        basket.require_open()
        promotion = self.directory.rulebook.promotion_by_code(text)
        if promotion is None:
            raise PromoCodeUnknownError(f"promo code {text.strip()[:32]!r} is not one of this mall's promotions")
        assert promotion.code is not None
        basket.give_promo_code(promotion.code)
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, promotion=promotion.promotion_id))
        return promotion

    async def redeem_points(self, basket: Basket, points: int) -> None:
        """Ask to pay part of the bill with points (priced by the offset rule)."""
        basket.require_open()
        available = await self.points.check_spend(basket.member, points)
        basket.spend_points(points, available)
