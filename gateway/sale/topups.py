"""Selling stored value at the till (充值): a basket that sells the member stored value and nothing else.

The cashier attaches the member, then asks for a top-up of an amount; the
basket gets one line of stored value at full price, is paid like any sale
(cash, a scanned wallet, the card terminal: whatever the rulebook's
``stored_value.tenders`` allow, never the member's own stored value) and
completes as a signed ``topup`` record naming the rulebook's bonus. The
ledger credits the wallet, and the bonus as a grant that lapses, only when it
accepts that record (``ledger/wallet_grants.py``); until then the member's
balance here is what the ledger last said. Offline, a till sells stored
value only as long as it may be offline at all (the rulebook's
``max_offline_hours``), as the ledger refuses older top-ups.
"""

from __future__ import annotations

import dataclasses

from gateway.errors import ConflictError
from gateway.ledger_link.link import LedgerLink
from gateway.sale.basket import Basket
from protocols.money import format_cny
from protocols.records import TransactionRecord
from protocols.rulebook import Rulebook
from protocols.stored_value import StoredValueRule


def rule_of(book: Rulebook) -> StoredValueRule:
    if book.stored_value is None:
        raise ConflictError("this mall sells no stored value at its tills (no stored_value in its rulebook)")
    return book.stored_value


def start(basket: Basket, book: Rulebook, amount: int, link: LedgerLink) -> None:
    """Make ``basket`` a top-up of ``amount`` for its member, as the rulebook in force sells it."""
    if basket.member is None:
        raise ConflictError("attach the member first: stored value is sold to a member")
    rule = rule_of(book)
    if why := rule.refusal(amount, []):
        raise ConflictError(f"no top-up of {format_cny(amount)}: {why}")
    last = link.state.last_contact
    hours = book.risk.max_offline_hours
    if not link.online and (last is None or link.clock() - last > hours * 3600):
        raise ConflictError(f"the ledger has been out of reach for over {hours:g} h: no stored value can be sold")
    basket.sell_stored_value(amount)


def check_tender(basket: Basket, book: Rulebook, kind: str) -> None:
    """A top-up is paid only with what the rulebook allows; never with stored value."""
    if basket.topup is None:
        return
    rule = rule_of(book)
    if kind == "wallet" or kind not in rule.tenders:
        allowed = ", ".join(sorted(rule.tenders))
        raise ConflictError(f"a top-up is paid with {allowed}: not with {kind}")


def bonus_of(basket: Basket, book: Rulebook) -> int:
    """The bonus the rulebook in force gives the basket's top-up (0: not a top-up). Worked out when asked,
    never kept: the record names the rulebook version it was completed under, and the ledger checks the
    bonus against that one."""
    if basket.topup is None or book.stored_value is None:
        return 0
    return book.stored_value.bonus_for(basket.topup)


def as_topup(basket: Basket, draft: TransactionRecord, book: Rulebook) -> TransactionRecord:
    """The sale record of a top-up basket, as the ledger takes it (``protocols/records.py``)."""
    assert basket.topup is not None
    # Face value in any rulebook: the record names the one whose bonus it carries.
    bonus = bonus_of(basket, book)
    return dataclasses.replace(draft, kind="topup", bonus=bonus, member_tier=None, rulebook_version=book.version)
