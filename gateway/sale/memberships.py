"""Selling a paid tier at the till (Kidswant's black-gold card): a basket that sells the member a tier and
nothing else (``protocols/paid_tiers.py`` has the rules).

The cashier attaches the member and asks for the tier; the basket gets one
line ``tier:<name>`` at the rulebook's price, is paid like any sale and
completes as a signed sale record. The ledger grants the tier, until a day,
only when it accepts that record; the member's tier here changes when the
ledger's member news says so (at once online, once it is back offline).
"""

from __future__ import annotations

from gateway.errors import ConflictError
from gateway.sale.basket import Basket
from protocols.money import format_cny
from protocols.rulebook import Rulebook


def start(basket: Basket, book: Rulebook, tier: str) -> int:
    """Make ``basket`` the sale of ``tier`` to its member, as the rulebook in force sells it; its price."""
    if basket.member is None:
        raise ConflictError("attach the member first: a paid tier is sold to a member")
    sold = book.tiers.get(tier)
    if sold is None or sold.price is None:
        on_sale = sorted(t.name for t in book.tiers.values() if t.price is not None)
        offer = ", ".join(f"{n} ({format_cny(book.tiers[n].price or 0)})" for n in on_sale) or "none"
        raise ConflictError(f"tier {tier!r} is not for sale here; the rulebook sells: {offer}")
    basket.sell_tier(tier, sold.price)
    return sold.price
