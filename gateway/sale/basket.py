"""Baskets held in memory while the cashier builds them.

A basket is only state on the way to a sale; the sale itself lives in the
journal. The most recently created open basket is the *active* one: member
tokens scanned at the till attach to it.

The basket owns its transitions: it changes (lines, member, coupons, points)
only while open and no payment is held against it; it is ``cancel``led or
``complete``d once, from open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
import uuid
from dataclasses import dataclass, field

from gateway.errors import ConflictError, NotFoundError
from gateway.members.coupons import HeldCoupon, hold
from gateway.members.match import MemberMatch
from offline_queue.payments import PaymentIntent
from protocols.gift_cards import GIFT_CARD_CATEGORY
from protocols.micropay import Outcome
from protocols.paid_tiers import PAID_TIER_CATEGORY, tier_sku
from protocols.pricing import PricedBasket
from protocols.pricing.model import BasketLine
from protocols.stored_value import TOPUP_SKU

MAX_OPEN_BASKETS = 64
MAX_LINES = 500
MAX_PROMO_CODES = 5


class BasketState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"  # given up; any payment taken was given back


@dataclass
class Basket:
    basket_id: str
    created_at: float
    lines: list[BasketLine] = field(default_factory=list)
    member: MemberMatch | None = None
    state: BasketState = BasketState.OPEN
    txn_id: str | None = None
    completion_key: str | None = None
    coupons: list[HeldCoupon] = field(default_factory=list)
    points_to_redeem: int = 0
    promo_codes: list[str] = field(default_factory=list)  # as the rulebook spells them
    lines_given: int = 0  # line ids handed out so far: a removed line's id is never given again
    points_available: int = 0  # the member's balance as this terminal knows it, when points were asked for
    payments: list[PaymentIntent] = field(default_factory=list)  # scan-to-pay attempts, newest last
    frozen: PricedBasket | None = None  # the price payments were taken against
    # A top-up basket (``gateway/sale/topups.py``): stored value sold to its member, nothing else.
    topup: int | None = None
    # A paid tier basket (``gateway/sale/memberships.py``): the tier sold to its member, nothing else.
    membership: str | None = None
    # Prices changed by hand (``change_price``): line id -> the price it was rung up at; and who approved.
    price_overrides: dict[int, int] = field(default_factory=dict)
    approved_by: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def require_open(self) -> None:
        """The basket may still change: open, and no payment taken against its total."""
        if self.state is not BasketState.OPEN:
            raise ConflictError(f"basket {self.basket_id} is {self.state}; start a new basket")
        if self.payments_held():
            raise ConflictError(
                "a payment was taken for this basket: complete it, or cancel it to give the payment back"
            )

    def require_payable(self) -> None:
        """A payment may be taken: the basket is open (payments already held do not stop another)."""
        if self.state is not BasketState.OPEN:
            raise ConflictError(f"basket {self.basket_id} is {self.state}; no payment can be taken")

    def payments_held(self) -> list[PaymentIntent]:
        """Payments paid or still running: they count toward the bill."""
        return [p for p in self.payments if p.state in (Outcome.PENDING, Outcome.PAID)]

    def add_line(
        self, sku: str, name: str, category: str, quantity: int, unit_price: int, merchant: str | None = None
    ) -> BasketLine:
        self.require_open()
        self.require_goods()
        if len(self.lines) >= MAX_LINES:
            raise ConflictError(f"a basket holds at most {MAX_LINES} lines")
        # Line ids stay what the till was told: a removed line's id is never given again.
        self.lines_given = max(self.lines_given, len(self.lines)) + 1
        line = BasketLine(self.lines_given, sku, name, category, quantity, unit_price, merchant)
        self.lines.append(line)
        return line

    def line(self, line_id: int) -> BasketLine:
        found = next((x for x in self.lines if x.line_id == line_id), None)
        if found is None:
            raise NotFoundError(f"basket {self.basket_id} has no line {line_id}")
        return found

    def remove_line(self, line_id: int) -> BasketLine:
        """Take a line off (while no payment is held): the cashier rang it up by mistake."""
        self.require_open()
        self.require_goods()
        line = self.line(line_id)
        self.lines.remove(line)
        return line

    def change_quantity(self, line_id: int, quantity: int) -> BasketLine:
        """A line's quantity corrected (while no payment is held); a gift card load is one card, quantity 1."""
        self.require_open()
        self.require_goods()
        line = self.line(line_id)
        if line.category == GIFT_CARD_CATEGORY:
            raise ConflictError("a gift card load is one card: remove the line and load the card again")
        changed = dataclasses.replace(line, quantity=quantity)
        self.lines[self.lines.index(line)] = changed
        return changed

    def change_price(self, line_id: int, unit_price: int, approved_by: str | None) -> BasketLine:
        """A line's unit price changed by hand (while no payment is held), the price it was rung up at kept; a
        gift card load or stored value is sold at face value only."""
        self.require_open()
        self.require_goods()
        line = self.line(line_id)
        if line.category == GIFT_CARD_CATEGORY:
            raise ConflictError("a gift card is loaded at face value: its price is not changed by hand")
        first = self.price_overrides.setdefault(line_id, line.unit_price)
        if unit_price == first:
            del self.price_overrides[line_id]  # back to its price: no longer changed
        changed = dataclasses.replace(line, unit_price=unit_price)
        self.lines[self.lines.index(line)] = changed
        if approved_by is not None:
            self.approved_by = approved_by
        return changed

    def detach(self) -> None:
        """The member taken off (the wrong customer attached): their coupons and points go with them."""
        self.require_open()
        if self.member is None:
            raise ConflictError("no member is attached to this basket")
        if self.topup is not None or self.membership is not None:
            raise ConflictError("a top-up or a paid tier is sold to its member: cancel the basket instead")
        self.member, self.coupons, self.points_to_redeem, self.points_available = None, [], 0, 0

    def drop_coupon(self, coupon_id: str) -> None:
        """A coupon taken off: the customer keeps it for another day (nothing was redeemed)."""
        self.require_open()
        kept = [c for c in self.coupons if c.definition.coupon_id != coupon_id]
        if len(kept) == len(self.coupons):
            raise NotFoundError(f"no coupon {coupon_id} is held on this basket")
        self.coupons = kept

    def require_goods(self) -> None:
        """Goods, coupons and points belong to a sale: a top-up or a paid tier is sold on its own."""
        if self.topup is not None:
            raise ConflictError("this basket sells stored value only: start a new basket for goods")
        if self.membership is not None:
            raise ConflictError(f"this basket sells the {self.membership} tier only: start a new basket for goods")

    @property
    def face_value(self) -> bool:
        """Stored value or a paid tier: sold at its price, no benefit, earning nothing."""
        return self.topup is not None or self.membership is not None

    def sell_tier(self, tier: str, price: int) -> None:
        """Make this (empty) basket the sale of paid tier ``tier`` to its member: one line, at its price."""
        self.require_open()
        self.require_goods()
        if self.lines or self.coupons or self.points_to_redeem or self.promo_codes:
            raise ConflictError("a paid tier is sold on its own: start a new basket for it")
        if self.member is None:
            raise ConflictError("attach the member first: a paid tier is sold to a member")
        self.lines.append(BasketLine(1, tier_sku(tier), f"{tier} membership", PAID_TIER_CATEGORY, 1, price))
        self.membership = tier

    def sell_stored_value(self, amount: int) -> None:
        """Make this (empty) basket a top-up of ``amount`` for its member: one line, at full price."""
        self.require_open()
        if self.topup is not None:
            raise ConflictError("this basket is a top-up already: start a new basket for another")
        self.require_goods()
        if self.lines or self.coupons or self.points_to_redeem or self.promo_codes:
            raise ConflictError("a top-up is sold on its own: start a new basket for it")
        if self.member is None:
            raise ConflictError("attach the member first: stored value is sold to a member")
        self.lines.append(BasketLine(1, TOPUP_SKU, "Stored value", TOPUP_SKU, 1, amount))
        self.topup = amount

    def attach(self, match: MemberMatch) -> None:
        """The customer, identified; replaces a member attached before."""
        self.require_open()
        self.member = match

    def hold_coupon(self, coupon: HeldCoupon) -> None:
        """A checked coupon, held until the sale redeems it (one copy once, the member's own)."""
        self.require_open()
        self.require_goods()
        hold(self.coupons, coupon, self.member.member.member_id if self.member else None)

    def give_promo_code(self, code: str) -> None:
        """A promo code the customer showed: its promotion may apply to this basket (priced each time)."""
        self.require_open()
        self.require_goods()
        if code in self.promo_codes:
            raise ConflictError(f"promo code {code} was given to this basket already")
        if len(self.promo_codes) >= MAX_PROMO_CODES:
            raise ConflictError(f"a basket takes at most {MAX_PROMO_CODES} promo codes")
        self.promo_codes.append(code)

    def spend_points(self, points: int, available: int) -> None:
        """Ask to pay ``points`` of the bill with points; ``available``: the balance as this till knows it."""
        self.require_open()
        self.require_goods()
        self.points_to_redeem = points
        self.points_available = available

    def note_balance(self, available: int) -> None:
        """The member's points balance as this till knows it now (shown beside the price)."""
        self.points_available = available

    def record_payment(self, intent: PaymentIntent) -> None:
        """A payment taken for this basket, or its new state: replaces the same payment's earlier state."""
        for i, p in enumerate(self.payments):
            if p.payment_id == intent.payment_id:
                self.payments[i] = intent
                return
        self.payments.append(intent)

    def left_to_pay(self, due: int) -> int:
        return due - sum(p.amount for p in self.payments_held())

    def cancel(self) -> list[PaymentIntent]:
        """Give the basket up; return the payments it holds, which must be given back."""
        if self.state is not BasketState.OPEN:
            raise ConflictError(f"basket {self.basket_id} is {self.state}; it cannot be cancelled")
        self.state = BasketState.CANCELLED
        return self.payments_held()

    def require_completable(self) -> None:
        if not self.lines:
            raise ConflictError("the basket is empty")
        if self.state is not BasketState.OPEN:
            raise ConflictError(f"basket {self.basket_id} is {self.state}; start a new basket")
        if any(p.state is Outcome.PENDING for p in self.payments):
            raise ConflictError("a payment for this basket is still running; wait for its outcome")

    def complete(self, txn_id: str, completion_key: str) -> None:
        """The sale is on disk: the basket is done, and a retry with the same key is answered from it.

        Checked before the commit (``require_completable``, under the basket's lock), never after it:
        nothing may refuse a sale that is already in the journal.
        """
        self.state, self.txn_id, self.completion_key = BasketState.COMPLETED, txn_id, completion_key


class BasketStore:
    def __init__(self) -> None:
        self._baskets: dict[str, Basket] = {}
        self.active_id: str | None = None

    def create(self) -> Basket:
        open_count = sum(b.state is BasketState.OPEN for b in self._baskets.values())
        if open_count >= MAX_OPEN_BASKETS:
            raise ConflictError(f"{open_count} baskets are open; complete or drop one first")
        self._forget_completed()
        basket = Basket(uuid.uuid4().hex, time.time())
        self._baskets[basket.basket_id] = basket
        self.active_id = basket.basket_id
        return basket

    def get(self, basket_id: str) -> Basket:
        basket = self._baskets.get(basket_id)
        if basket is None:
            raise NotFoundError(f"no basket {basket_id}")
        return basket

    def active(self) -> Basket | None:
        basket = self._baskets.get(self.active_id or "")
        return basket if basket is not None and basket.state is BasketState.OPEN else None

    def _forget_completed(self) -> None:
        # Completed baskets stay briefly so a retried completion can be answered
        # from memory; the journal answers after that.
        done = [b for b in self._baskets.values() if b.state is not BasketState.OPEN]
        for basket in done[:-16]:
            del self._baskets[basket.basket_id]
