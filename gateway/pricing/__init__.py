"""The pricing engine: tier discounts, coupons, points offset and earning, exact to the fen.

``price()`` is pure and deterministic; see ``gateway/pricing/engine.py`` for
the order of the steps and the rounding rules.
"""

from gateway.pricing.engine import price
from gateway.pricing.model import Adjustment, PricedBasket, PricedLine
from gateway.pricing.receipt import receipt_lines

__all__ = ["Adjustment", "PricedBasket", "PricedLine", "price", "receipt_lines"]
