"""Pricing a 30-line basket with every benefit, beside a tier-only pass over the same basket.

The full case: a tier discount, two coupons (amount-off with minimum spend,
percent-off with a ceiling), a points offset and two campaigns that apply.
The peer, measured in the same run, is the same basket priced with the tier
discount alone, so the ratio shows what the other benefits cost.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from bench.stats import summary
from protocols.benefits import Campaign, CouponDefinition, EarnRule, OffsetRule
from protocols.pricing import BasketLine, Payment, price
from protocols.rulebook import MemberEntry, Rulebook, Tier

BOOK = Rulebook(
    version=1,
    currency="CNY",
    tiers={"classic": Tier("classic", 9500, {"M-BAKERY": 8500}, {"drinks": 9000})},
    excluded_categories=frozenset({"gift-card"}),
    issuer_keys={},
    earn=EarnRule(),
    campaigns=(
        Campaign("wallet-x2", "wallet ×2", 20_000, payment_methods=frozenset({"wallet"})),
        Campaign(
            "tuesday-bakery", "Tuesday bakery ×1.5", 15_000, weekdays=frozenset({2}), categories=frozenset({"bakery"})
        ),
    ),
    offset=OffsetRule(points_per_yuan=100, weekdays=frozenset({2, 5}), cap=5_000),
)
COUPONS = [
    CouponDefinition("C20", "¥20 off ¥200", "amount", amount=2_000, min_spend=20_000),
    CouponDefinition(
        "P10", "10 % off drinks, at most ¥15", "percent", rate=1_000, ceiling=1_500, categories=frozenset({"drinks"})
    ),
]
MEMBER = MemberEntry("M1", "classic")
TUESDAY = date(2026, 11, 24)
BASKET = [
    BasketLine(i, f"SKU{i}", f"item {i}", ("bakery", "drinks", "food", "gift-card")[i % 4], 1 + i % 3, 150 + 97 * i)
    for i in range(1, 31)
]


def _time(fn: Any, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def run(n: int = 10_000) -> dict[str, Any]:
    def full() -> object:
        return price(
            BASKET,
            MEMBER,
            BOOK,
            "M-BAKERY",
            day=TUESDAY,
            coupons=COUPONS,
            points_to_redeem=500,
            points_balance=2_000,
            payments=[Payment("wallet", 10_000)],
        )

    def tier_only() -> object:
        return price(BASKET, MEMBER, BOOK, "M-BAKERY", day=TUESDAY)

    _time(full, 500)  # warm up
    full_s, tier_s = summary(_time(full, n)), summary(_time(tier_only, n))
    return {
        "full": full_s,
        "tier_only": tier_s,
        "baskets_per_s": 1000 / full_s["mean_ms"],
        "ratio_p50": full_s["p50_ms"] / tier_s["p50_ms"],
    }


def report(r: dict[str, Any]) -> None:
    for name, label in (
        ("full", "30 lines, tier + 2 coupons + offset + 2 campaigns"),
        ("tier_only", "same basket, tier only"),
    ):
        s = r[name]
        print(f"  {label:<52} p50 {s['p50_ms'] * 1000:7.1f} µs  p99 {s['p99_ms'] * 1000:7.1f} µs")
    print(f"  {r['baskets_per_s']:,.0f} baskets/s with every benefit; {r['ratio_p50']:.1f}× the tier-only p50")
