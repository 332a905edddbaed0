"""Paid tiers (Kidswant's black-gold card): a tier the rulebook sells, for a number of days.

A rulebook tier with a ``price`` is sold at the till to the member attached:
a sale of one line, ``tier:<name>`` in the category ``paid-tier``, at the
price, with no benefit and earning nothing. When the ledger accepts it, the
member holds the tier until ``validity_days`` after the day of the sale
(bought again while it runs, from the day it would have lapsed); the yearly
tier review never moves a member in it (a paid tier has no growth threshold:
it is off the ladder), and when it lapses the member goes back to what their
growth reached, never below the tier they held before buying. Refunded
within ``refund_days`` of the sale, it is revoked at once; later, it is
not refundable. Money is integer fen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _Line(Protocol):  # a record's line (``protocols/records.py`` reads these rules: no import back)
    @property
    def sku(self) -> str: ...

    @property
    def category(self) -> str: ...


class _Record(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def lines(self) -> Sequence[_Line]: ...


PAID_TIER_CATEGORY = "paid-tier"
_PREFIX = "tier:"


def tier_sku(tier: str) -> str:
    return f"{_PREFIX}{tier}"


def tier_sold(r: _Record) -> str | None:
    """The tier a sale sells (its one line ``tier:<name>`` in ``paid-tier``), or None for any other record."""
    if r.kind != "sale" or len(r.lines) != 1:
        return None
    line = r.lines[0]
    if line.category != PAID_TIER_CATEGORY or not line.sku.startswith(_PREFIX):
        return None
    return line.sku.removeprefix(_PREFIX)
