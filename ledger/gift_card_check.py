"""What the ledger re-checks of a record's gift cards (``ledger/gift_cards.py``) before it moves a card.

- **Loads** (a sale's lines ``giftcard:<number>``): a card the ledger issued,
  not expired, each load and the balance after it within the rulebook's
  ``gift_cards`` bounds, the till's loads of that business day within its cap,
  and made no longer ago than a till may be offline (a till's cash is its word
  until the day's count: the cap bounds what its credentials alone can mint).
  A load given back (a refund's line) takes back no more than the card holds.
- **Tenders** of kind ``giftcard``: on a hold the ledger made for that card,
  terminal and amount, or, with none, a card that is active and not expired,
  within the offline limit a sale may take from stored value. A refund gives
  back only to a card its sale was paid with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from ledger.gift_cards import Card, holder
from ledger.holds import Hold
from protocols.business_day import business_day
from protocols.gift_cards import loads
from protocols.records import TransactionRecord
from protocols.rulebook import Rulebook


def gift_card_refusal(
    r: TransactionRecord,
    book: Rulebook,
    cards: Mapping[str, Card],
    holds: Mapping[str, Hold],
    loaded_before: int,
    made_lately: Callable[[], str | None],
    sale: TransactionRecord | None,
    unheld: Mapping[str, int] | None = None,
) -> str | None:
    """Why the record's gift card loads or tenders cannot be believed, or None. ``unheld``: per card, what its
    terminal spent from it with no hold in records the ledger had not received when this one was made."""
    day = business_day(r.created_at, book.zone)
    for number, amount in loads(r.lines):
        if why := _load(r, book, cards.get(number), number, amount, day, loaded_before, made_lately):
            return why
        loaded_before += amount
    for t in r.tenders:
        if t.kind != "giftcard" or t.card is None:
            continue
        if r.kind != "sale":
            paid_with = {(s.card, s.ref) for s in sale.tenders} if sale is not None else set()
            if (t.card, t.ref) not in paid_with:
                return f"it gives {t.amount} fen back to gift card {t.card}, which did not pay its sale"
            continue
        earlier = (unheld or {}).get(t.card, 0)
        if why := _spend(r, book, cards.get(t.card), t.card, t.amount, t.ref, holds, day, earlier):
            return why
    return None


def _load(
    r: TransactionRecord,
    book: Rulebook,
    card: Card | None,
    number: str,
    amount: int,
    day: date,
    loaded_before: int,
    made_lately: Callable[[], str | None],
) -> str | None:
    if card is None:
        return f"it loads gift card {number}, which this ledger never issued"
    if r.kind != "sale":
        if amount > card.balance:
            return f"it takes {amount} fen back off gift card {number}, which holds {card.balance}: spent already"
        return None
    rule = book.gift_cards
    if rule is None:
        return f"it loads a gift card, which rulebook version {r.rulebook_version} does not sell"
    if why := card.refusal(day) or rule.refusal(amount, card.balance):
        return f"it loads gift card {number} where its rulebook says: {why}"
    if loaded_before + amount > rule.terminal_daily_cap:
        return (
            f"it takes terminal {r.terminal_id}'s gift card loads on {day} to {loaded_before + amount} fen, past "
            f"the rulebook's daily cap of {rule.terminal_daily_cap} fen"
        )
    return made_lately()


def _spend(
    r: TransactionRecord,
    book: Rulebook,
    card: Card | None,
    number: str,
    amount: int,
    ref: str | None,
    holds: Mapping[str, Hold],
    day: date,
    earlier: int,
) -> str | None:
    if card is None:
        return f"it pays with gift card {number}, which this ledger never issued"
    hold = holds.get(ref or "")
    if (
        hold is not None
        and hold.unit == "fen"
        and hold.member_id == holder(number)
        and hold.terminal_id == r.terminal_id
        and amount <= hold.amount
        and (hold.state == "pending" or (hold.state == "posted" and hold.posted_by == r.txn_id))
    ):
        return None
    if card.state != "active" or card.refusal(day):
        return f"it pays with gift card {number}, which cannot pay: {card.refusal(day) or card.state}"
    if amount > book.risk.max_wallet_per_sale:
        return (
            f"it takes {amount} fen from gift card {number} with no hold: the offline limit is "
            f"{book.risk.max_wallet_per_sale} fen a sale"
        )
    if earlier + amount > book.risk.max_member_wallet:
        return (
            f"with no hold, terminal {r.terminal_id} had taken {earlier} fen from gift card {number} in sales not "
            f"yet synced: {amount} more is past the offline limit of {book.risk.max_member_wallet} fen"
        )
    return None
