from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from protocols.pricing import BasketLine, price
from protocols.rulebook import MemberEntry, Rulebook, Tier

BOOK = Rulebook(
    version=7,
    currency="CNY",
    tiers={"gold": Tier("gold", 9000, {"M-BAKERY": 8500})},
    excluded_categories=frozenset({"tobacco"}),
    issuer_keys={},
)
DAY = date(2026, 11, 24)
GOLD = MemberEntry("M1", "gold")


def line(i: int, price_fen: int, qty: int = 1, category: str = "food") -> BasketLine:
    return BasketLine(i, f"SKU{i}", "item", category, qty, price_fen)


def test_member_rate_per_merchant_and_exclusions() -> None:
    lines = [line(1, 3333, 3), line(2, 5000, 1, "tobacco")]
    at_bakery = price(lines, GOLD, BOOK, "M-BAKERY", day=DAY)
    assert [(p.rate, p.net, p.discount) for p in at_bakery.lines] == [(8500, 8499, 1500), (10000, 5000, 0)]
    elsewhere = price(lines, GOLD, BOOK, "M-OTHER", day=DAY)
    assert elsewhere.lines[0].net == 8999  # 9999 × 0.9 = 8999.1
    assert at_bakery.rulebook_version == 7


def test_no_member_pays_full_price_and_earns_nothing() -> None:
    priced = price([line(1, 250_000)], None, BOOK, "M-BAKERY", day=DAY)
    assert (priced.total_due, priced.points_earned) == (250_000, 0)


def test_points_are_one_per_full_hundred_yuan_paid() -> None:
    assert price([line(1, 11_765)], GOLD, BOOK, "M-BAKERY", day=DAY).points_earned == 1  # pays 10000.25 → 10000
    assert price([line(1, 11_764)], GOLD, BOOK, "M-BAKERY", day=DAY).points_earned == 0  # pays 9999


def test_unknown_tier_gets_no_discount() -> None:
    priced = price([line(1, 1000)], MemberEntry("M2", "ghost"), BOOK, "M-BAKERY", day=DAY)
    assert priced.total_discount == 0


@given(st.lists(st.tuples(st.integers(0, 10**8), st.integers(1, 99), st.booleans()), max_size=30))
def test_totals_always_add_up(items: list[tuple[int, int, bool]]) -> None:
    lines = [line(i, p, q, "tobacco" if t else "food") for i, (p, q, t) in enumerate(items)]
    priced = price(lines, GOLD, BOOK, "M-BAKERY", day=DAY)
    assert priced.total_gross == sum(p.gross for p in priced.lines)
    assert priced.total_due == sum(p.net for p in priced.lines)
    assert priced.total_gross - priced.total_discount == priced.total_due
    assert all(0 <= p.discount <= p.gross for p in priced.lines)
