"""Paying a basket by scan-to-pay or the card terminal, and giving a basket up.

The price the customer pays against is frozen on the basket when a payment
is taken. A member wallet code names its member ("pay = member"): attached
before the payment, so their benefits apply. One payment at a time per
basket: a retried request waits for the first and gets its outcome.
"""

from __future__ import annotations

from typing import Protocol

from gateway.errors import ConflictError
from gateway.events import BasketChanged, EventHub
from gateway.members.identify import Identification
from gateway.sale import gift_cards, topups
from gateway.sale.basket import Basket
from gateway.sale.building import Building
from gateway.sale.intake import Intake
from gateway.sale.pricing import Pricer
from offline_queue.payments import PaymentIntent


class PaymentTaking(Protocol):
    """The payment desk as a sale uses it (``gateway/payments/desk.py``)."""

    async def earlier(
        self, basket_id: str, key: str, code: str | None = None, amount: int | None = None
    ) -> PaymentIntent | None: ...

    async def begin(
        self, basket_id: str, left: int, code: str | None, amount: int | None, key: str
    ) -> PaymentIntent: ...

    async def outcome(self, intent: PaymentIntent) -> PaymentIntent: ...

    async def give_back_held(self, intent: PaymentIntent) -> PaymentIntent: ...

    def route(self, code: str | None) -> tuple[str, object]: ...


class Paying:
    def __init__(
        self,
        desk: PaymentTaking,
        pricer: Pricer,
        identification: Identification,
        building: Building,
        intake: Intake,
        hub: EventHub,
    ) -> None:
        self.desk = desk
        self.pricer = pricer
        self.identification = identification
        self.building = building
        self.intake = intake
        self.hub = hub

    async def pay(self, basket: Basket, code: str | None, amount: int | None, key: str) -> tuple[PaymentIntent, bool]:
        """Take a payment toward the basket: a scanned code, or (no code) the card terminal; see docs/payments.md."""
        self.intake.refuse_if_draining("takes no new payments")
        if basket.topup is not None:  # before anything is asked of a provider
            topups.check_tender(basket, self.pricer.rules.rulebook, self.desk.route(code)[0])
        gift_cards.check_tender(basket, self.desk.route(code)[0])
        if code is not None and code.startswith("PW1."):
            await self._wallet_member(basket, code)
        priced = self.pricer.price(basket)
        basket.frozen = priced  # what the customer pays against stays what was shown
        async with basket.lock:  # one payment at a time per basket; a retry waits for the first
            intent = await self.desk.earlier(basket.basket_id, key, code, amount)
            replayed = intent is not None
            if intent is None:
                basket.require_payable()
                intent = await self.desk.begin(
                    basket.basket_id, basket.left_to_pay(priced.total_due), code, amount, key
                )
            basket.record_payment(intent)
            intent = await self.desk.outcome(intent)  # goes on even if this request is dropped
            basket.record_payment(intent)
        return intent, replayed

    async def _wallet_member(self, basket: Basket, code: str) -> None:
        match = await self.identification.by_token(code)
        if basket.member is None:
            self.building.attach_member(basket, match)  # before any payment: the price may change
        elif basket.member.member.member_id != match.member.member_id:
            raise ConflictError("this wallet code is another member's than the basket's")

    async def cancel(self, basket: Basket) -> list[PaymentIntent]:
        """Give the basket up; payments taken for it are given back (reversed)."""
        async with basket.lock:
            for intent in basket.cancel():
                basket.record_payment(await self.desk.give_back_held(intent))
        self.hub.publish(BasketChanged(basket_id=basket.basket_id, state=basket.state))
        return basket.payments
