"""Gift cards as a payment provider (``protocols/gift_cards.py``): the card's ``GC1.`` code, paid through the ledger.

The code on the card is its number signed by the ledger's issuer key, checked
here offline. Online, pay holds the amount on the card at the ledger (keyed by
the payment id) and the sale's ``giftcard`` tender, which names the card, later
takes it. Offline, the rulebook's limit on what a sale may take from stored value
with no hold decides; the ledger debits the card when the sale arrives (spent
twice offline: a conflict for the mall). Query asks the ledger about the hold;
reverse releases it (unreachable: the hold lapses by itself, and only a sale
record ever debits a card).
"""

from __future__ import annotations

from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.payments.held import held_step, hold_online
from protocols.errors import GatewayError
from protocols.gift_cards import GIFT_CARD_PREFIX
from protocols.micropay import Answer, Reply, Step
from protocols.money import format_cny
from protocols.tokens import verify_token


class GiftCardProvider:
    name = "giftcard"

    def __init__(self, terminal_id: str, directory: MemberDirectory, link: LedgerLink, client: LedgerClient) -> None:
        self.terminal_id = terminal_id
        self.directory = directory
        self.link = link
        self.client = client

    def number_of(self, code: str) -> str:
        """The card a ``GC1.`` code names, if the ledger signed it (raises the token's error otherwise)."""
        keys = self.directory.rulebook.public_keys()
        return verify_token(code, GIFT_CARD_PREFIX, keys, now=int(self.link.clock())).subject

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        if step is Step.PAY:
            return await self._pay(ref, code, amount)
        return await held_step(self.client, step, ref)

    async def _pay(self, ref: str, code: str, amount: int) -> Reply:
        try:
            number = self.number_of(code)
        except GatewayError as err:
            return Reply(Answer.FAILED, {"reason": f"this is not a card of this mall's: {err}"})
        detail = {"card": number}
        held = await hold_online(
            self.link, lambda: self.client.hold_gift_card(number, amount, ref), detail, "the gift card"
        )
        if held is not None:
            return held
        limit = self.directory.rulebook.risk.max_wallet_per_sale
        if amount > limit:
            reason = f"offline, at most {format_cny(limit)} may be paid from a gift card on one sale"
            return Reply(Answer.FAILED, {**detail, "reason": reason})
        return Reply(Answer.SUCCESS, {**detail, "offline": "1"})

    async def close(self) -> None:
        """The ledger client belongs to the gateway; nothing of its own to close."""
