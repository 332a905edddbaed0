"""Selling and reloading gift cards at the till (``protocols/gift_cards.py``): a line that loads a card.

The cashier scans the card's ``GC1.`` code (verified here, offline too) or
types its number (a weak identity: taken online only, where the ledger knows
the card), and the amount. The basket gets a line ``giftcard:<number>`` at
face value (no benefit, earning nothing), beside any goods; it is paid with
anything but stored value or another gift card. The ledger credits the card
only when it accepts the sale, and re-checks everything (``ledger/gift_card_check.py``);
online, the till asks the ledger about the card first so that the cashier
hears at once of an expired card or one that would hold too much.
"""

from __future__ import annotations

from gateway.errors import ConflictError, LedgerError, TenderError
from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink
from gateway.payments.gift_card import GiftCardProvider
from gateway.sale.basket import Basket
from protocols.errors import GatewayError
from protocols.gift_cards import GIFT_CARD_CATEGORY, card_sku, is_number, loads
from protocols.pricing.model import BasketLine
from protocols.rulebook import Rulebook


async def load(
    basket: Basket,
    book: Rulebook,
    cards: GiftCardProvider,
    client: LedgerClient,
    link: LedgerLink,
    amount: int,
    code: str | None = None,
    number: str | None = None,
) -> BasketLine:
    """A line loading ``amount`` onto the card the code (or typed number) names."""
    rule = book.gift_cards
    if rule is None:
        raise ConflictError("this mall's tills sell no gift cards (no gift_cards in its rulebook)")
    if code is not None:
        try:
            number = cards.number_of(code)
        except GatewayError as err:
            raise ConflictError(f"this is not a gift card of this mall's: {err}") from err
    elif number is None or not is_number(number):
        raise ConflictError("a gift card number is GC and 12 digits, its check digit last: check it and type it again")
    elif not link.online:
        raise ConflictError("offline, a gift card is sold only with the code on it: scan it")
    if any(card == number for card, _ in loads(basket.lines)):
        raise ConflictError(f"gift card {number} is loaded on this basket already")
    balance = 0
    if link.online:
        try:
            card = await client.gift_card(number)
        except LedgerError:
            card = None  # the ledger re-checks it when the sale arrives
        if card is not None and card["state"] == "expired":
            raise ConflictError(f"gift card {number} has expired: it takes no more money")
        balance = int(card["balance"]) if card is not None else 0
    if why := rule.refusal(amount, balance):
        raise ConflictError(f"gift card {number} cannot take this: {why}")
    return basket.add_line(card_sku(number), "Gift card", GIFT_CARD_CATEGORY, 1, amount)


def check_tender(basket: Basket, kind: str) -> None:
    """Gift card value is bought with money: never with stored value or another gift card."""
    if kind in ("wallet", "giftcard") and loads(basket.lines):
        raise TenderError("a gift card is loaded with money: not with stored value or another gift card")
