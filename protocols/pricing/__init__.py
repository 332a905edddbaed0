"""The pricing engine: tier discounts, coupons, points offset and earning, exact to the fen and the point.

``price()`` is pure and deterministic (``engine.py`` gives the order of the
steps and the rounding rules; ``earning.py`` what a bill earns). The till
prices baskets with it; the ledger re-checks records with the same code.
"""

from protocols.pricing.engine import price, with_earning
from protocols.pricing.model import Adjustment, BasketLine, Payment, PricedBasket, PricedLine, TenderEarning
from protocols.pricing.receipt import receipt_lines

__all__ = [
    "Adjustment",
    "BasketLine",
    "Payment",
    "PricedBasket",
    "PricedLine",
    "TenderEarning",
    "price",
    "receipt_lines",
    "with_earning",
]
