"""Gift cards (Wangfujing's 购物卡): stored value without a member, sold and reloaded at a till, spent as a tender.

A card is a number (``GC`` and twelve digits, the last a check digit, printed
on the card) and a ``GC1.`` code on it (the number signed by the ledger's
issuer key: a till verifies it offline; a typed number is a weak identity,
taken online only). The ledger issues cards as stock; a sale *loads* one (a
line ``giftcard:<number>`` in the category ``gift-card-load``, at the amount,
no benefit, earning nothing) and, accepted, activates or reloads it, until
``validity_days`` after its first load. Spending is a tender of kind
``giftcard`` naming the card: on a hold the ledger made (online), or within
the offline risk limits. The rulebook's ``gift_cards`` section bounds a load,
a card's balance and what one till may load in a business day. Money is
integer fen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocols.schema import Fields

GIFT_CARD_CATEGORY = "gift-card-load"
GIFT_CARD_PREFIX = "GC1."
NUMBER_PATTERN = r"GC[0-9]{12}"
_SKU = "giftcard:"


def check_digit(body: str) -> str:
    """The Luhn check digit of ``body`` (digits): a mistyped digit or two swapped are caught."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def is_number(text: str) -> bool:
    return re.fullmatch(NUMBER_PATTERN, text) is not None and check_digit(text[2:-1]) == text[-1]


def card_sku(number: str) -> str:
    return f"{_SKU}{number}"


def loads(lines: Any) -> list[tuple[str, int]]:
    """The cards a record's (or a basket's) lines load, and how much (a sale: loaded; a refund: taken back).
    A load is sold at face value: its money is its net on a record, its price on a basket."""
    return [
        (x.sku.removeprefix(_SKU), getattr(x, "net", x.unit_price * x.quantity))
        for x in lines
        if x.category == GIFT_CARD_CATEGORY and x.sku.startswith(_SKU)
    ]


@dataclass(frozen=True, slots=True)
class GiftCardRule:
    min_load: int = 5_000  # ¥50
    max_load: int = 500_000  # ¥5,000 in one load
    max_balance: int = 1_000_000  # ¥10,000 on one card
    validity_days: int = 1_095  # from the first load
    terminal_daily_cap: int = 2_000_000  # ¥20,000 loaded by one till in a business day

    def refusal(self, amount: int, balance: int) -> str | None:
        """Why a load of ``amount`` onto a card holding ``balance`` is refused, or None."""
        if not self.min_load <= amount <= self.max_load:
            return f"a load is {self.min_load} to {self.max_load} fen, not {amount}"
        if balance + amount > self.max_balance:
            return f"a card holds at most {self.max_balance} fen; it holds {balance}"
        return None

    def to_wire(self) -> dict[str, Any]:
        return {
            "min_load": self.min_load,
            "max_load": self.max_load,
            "max_balance": self.max_balance,
            "validity_days": self.validity_days,
            "terminal_daily_cap": self.terminal_daily_cap,
        }

    @classmethod
    def read(cls, f: Fields) -> GiftCardRule:
        rule = cls(
            f.integer("min_load", 5_000, minimum=1, maximum=10**9),
            f.integer("max_load", 500_000, minimum=1, maximum=10**9),
            f.integer("max_balance", 1_000_000, minimum=1, maximum=10**10),
            f.integer("validity_days", 1_095, minimum=1, maximum=36_500),
            f.integer("terminal_daily_cap", 2_000_000, minimum=0, maximum=10**12),
        )
        f.done()
        if rule.min_load > rule.max_load or rule.max_load > rule.max_balance:
            f.problems.add(f.path, "min_load ≤ max_load ≤ max_balance")
        return rule
