"""Exact money: integer fen, basis-point rates, half-up rounding, fair allocation.

Amounts are ``int`` counts of the currency's minor unit (fen for CNY). Rates
are basis points: ``8500`` means 85 %. Nothing here ever touches a float.
"""

from __future__ import annotations

import re
from typing import NewType

from protocols.errors import MoneyError

Fen = NewType("Fen", int)
BasisPoints = NewType("BasisPoints", int)

FULL_RATE = BasisPoints(10_000)
FEN_PER_YUAN = 100


def apply_rate(amount: int, rate_bp: int) -> int:
    """Return ``amount * rate_bp / 10000`` rounded half-up to the fen.

    Half-up on non-negative amounts: 0.5 fen rounds to 1 fen. The payable price
    after a discount is rounded; the discount is what remains, so
    ``apply_rate(a, r) + (a - apply_rate(a, r)) == a`` always holds.
    """
    if amount < 0:
        raise MoneyError(f"amount must not be negative, got {amount}")
    if not 0 <= rate_bp <= FULL_RATE:
        raise MoneyError(f"rate must be 0..10000 basis points, got {rate_bp}")
    return (amount * rate_bp * 2 + FULL_RATE) // (FULL_RATE * 2)


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` fen over ``weights`` pro rata, by the largest-remainder method.

    The parts always add up to ``total`` exactly. Ties in remainders go to the
    earlier weight, so the result is deterministic.
    """
    if total < 0:
        raise MoneyError(f"cannot allocate a negative amount ({total})")
    if any(w < 0 for w in weights):
        raise MoneyError("allocation weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total == 0:
            return [0] * len(weights)
        raise MoneyError(f"cannot allocate {total} fen over zero weights")
    shares = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        shares[i] += 1
    return shares


_YUAN = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")


def yuan(amount: int) -> str:
    """Fen as yuan with two decimals, as the wallets' APIs and statements write them: 12345 -> "123.45"."""
    if amount < 0:
        raise MoneyError(f"a negative amount ({amount} fen) has no yuan text here")
    whole, fen = divmod(amount, FEN_PER_YUAN)
    return f"{whole}.{fen:02d}"


def fen_from_yuan(text: str) -> int:
    """Yuan as the wallets write them ("123.45", "9.5", "10") as fen, exactly; anything else is refused."""
    match = _YUAN.fullmatch(text)
    if match is None:
        raise MoneyError(f"not an amount in yuan: {text[:32]!r}")
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * FEN_PER_YUAN + int(cents)


def format_cny(amount: int) -> str:
    """Render fen as ``¥12.34`` for receipts and logs."""
    sign = "-" if amount < 0 else ""
    yuan, fen = divmod(abs(amount), FEN_PER_YUAN)
    return f"{sign}¥{yuan}.{fen:02d}"
