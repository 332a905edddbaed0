"""A basket's price on the mall's business day, and what it earns as it is paid.

The clock is injected: the business day (the rulebook's time zone, never the
host's) and the record's time come from one instant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Protocol

from gateway.sale.basket import Basket
from protocols.business_day import business_day, minute_of_day
from protocols.micropay import Outcome
from protocols.pricing import Payment, PricedBasket, price, with_earning
from protocols.rulebook import MemberEntry, Rulebook


class RulesInForce(Protocol):
    """The signed rulebook the till runs on (``MemberDirectory``)."""

    @property
    def rulebook(self) -> Rulebook: ...


class Pricer:
    def __init__(
        self, rules: RulesInForce, merchant_id: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.rules = rules
        self.merchant_id = merchant_id
        self.clock = clock

    def today(self) -> date:
        """The mall's business day now."""
        return self.day_of(self.clock())

    def day_of(self, moment: datetime) -> date:
        return business_day(moment, self.rules.rulebook.zone)

    def price(self, basket: Basket) -> PricedBasket:
        """The basket's price, and what it earns with the payments taken so far; once a payment is
        held against it, the price it was paid at (the rules may have changed since)."""
        paid = [Payment(p.wallet, p.amount) for p in basket.payments if p.state is Outcome.PAID]
        now = self.clock()
        return self.earned(basket, self.priced(basket, now), paid, None, self.day_of(now))

    def priced(self, basket: Basket, now: datetime) -> PricedBasket:
        """The basket's price at the instant ``now``: its business day, and its time of day for promotions
        limited to hours, both in the mall's zone."""
        # Stored value and paid tiers are sold at face value: no member price, no benefit.
        member = basket.member.member if basket.member and not basket.face_value else None
        rulebook = self.rules.rulebook
        priced = price(
            basket.lines,
            member,
            rulebook,
            self.merchant_id,
            day=self.day_of(now),
            coupons=[c.definition for c in basket.coupons],
            points_to_redeem=basket.points_to_redeem,
            points_balance=basket.points_available,
            minute=minute_of_day(now, rulebook.zone),
            promo_codes=basket.promo_codes,
        )
        if basket.frozen is not None and basket.payments_held() and priced.total_due != basket.frozen.total_due:
            return basket.frozen  # the rules changed under a paid basket: it keeps the price it was paid at
        return priced

    def earned(
        self, basket: Basket, priced: PricedBasket, payments: list[Payment], earn_as: MemberEntry | None, day: date
    ) -> PricedBasket:
        """What ``priced`` earns its member (or ``earn_as``, "pay = member") paid by ``payments`` so far."""
        earner = basket.member.member if basket.member else earn_as
        if basket.face_value:
            earner = None  # buying stored value earns nothing (paying with it does)
        rules = self.rules.rulebook
        return with_earning(priced, earner, rules, self.merchant_id, day=day, payments=payments)
