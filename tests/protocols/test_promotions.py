"""Promotions for everyone: 满减 stepped and repeated, buy X get Y, member prices, promo codes, time windows,
and how they meet tier discounts and coupons; every figure exact to the fen."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.demo_data import DEMO_BENEFITS, DEMO_EXCLUDED, DEMO_TIERS
from protocols.benefits import CouponDefinition
from protocols.errors import SchemaError
from protocols.paid_tiers import PAID_TIER_CATEGORY, tier_sku
from protocols.pricing import BasketLine, Payment, price, receipt_lines, with_earning
from protocols.promotions import Promotion, SpendStep
from protocols.rulebook import MemberEntry, Rulebook, Tier
from protocols.stored_value import TOPUP_SKU

TUESDAY = date(2026, 12, 1)
GOLD = MemberEntry("M1", "gold")


def book(*promotions: Promotion) -> Rulebook:
    return Rulebook(
        version=3,
        currency="CNY",
        tiers={"gold": Tier("gold", 9000)},
        excluded_categories=frozenset({"tobacco"}),
        issuer_keys={},
        promotions=promotions,
    )


def line(i: int, unit: int, qty: int = 1, category: str = "fashion", sku: str = "") -> BasketLine:
    return BasketLine(i, sku or f"SKU{i}", f"item {i}", category, qty, unit)


SPEND_300_SAVE_50 = Promotion(
    "P-SPEND", "满300减50", "spend", steps=(SpendStep(30_000, 5_000), SpendStep(50_000, 10_000))
)


def test_spend_threshold_gives_the_highest_step_reached_spread_over_the_lines() -> None:
    rules = book(SPEND_300_SAVE_50)
    under = price([line(1, 29_999)], None, rules, "M1", day=TUESDAY)
    assert under.total_discount == 0
    assert under.notices == ()  # an automatic promotion not reached says nothing
    at = price([line(1, 20_000), line(2, 10_000)], None, rules, "M1", day=TUESDAY)
    assert [p.promotion_discount for p in at.lines] == [3_333, 1_667]  # 50 yuan by net, largest remainder
    assert (at.total_promotion_discount, at.total_due) == (5_000, 25_000)
    top = price([line(1, 60_000)], None, rules, "M1", day=TUESDAY)
    assert top.total_promotion_discount == 10_000
    assert [(a.kind, a.rule, a.amount) for a in top.adjustments] == [("promotion", "P-SPEND", 10_000)]


def test_repeated_spend_takes_off_for_every_full_step_up_to_its_limit() -> None:
    every = Promotion("P-EVERY", "每满300减50", "spend", steps=(SpendStep(30_000, 5_000),), repeat=True)
    assert price([line(1, 95_000)], None, book(every), "M1", day=TUESDAY).total_discount == 15_000
    capped = replace(every, max_off=10_000)
    assert price([line(1, 95_000)], None, book(capped), "M1", day=TUESDAY).total_discount == 10_000


def test_spend_counts_what_the_tier_left_and_only_the_scoped_goods() -> None:
    scoped = replace(SPEND_300_SAVE_50, categories=frozenset({"fashion"}))
    lines = [line(1, 33_000), line(2, 50_000, category="food"), line(3, 40_000, category="tobacco")]
    # gold 90 %: fashion 33,000 → 29,700, under ¥300; food and tobacco never count
    assert price(lines, GOLD, book(scoped), "M1", day=TUESDAY).total_promotion_discount == 0
    assert price(lines, None, book(scoped), "M1", day=TUESDAY).lines[0].promotion_discount == 5_000


def test_buy_two_get_one_gives_the_cheapest_units_and_spreads_their_value_over_the_bundle() -> None:
    b2g1 = Promotion("P-B2G1", "买二送一", "bundle", buy=2, get=1, categories=frozenset({"toys"}))
    lines = [line(1, 9_900, 2, "toys"), line(2, 4_900, 1, "toys"), line(3, 1_000, 1, "food")]
    priced = price(lines, None, book(b2g1), "M1", day=TUESDAY)
    assert priced.total_promotion_discount == 4_900  # three toys: the cheapest free
    assert [p.promotion_discount for p in priced.lines] == [3_928, 972, 0]  # by net: 19,800 / 4,900
    six = price([line(1, 1_000, 6, "toys"), line(2, 500, 1, "toys")], None, book(b2g1), "M1", day=TUESDAY)
    assert six.total_promotion_discount == 500 + 1_000  # 7 units: 2 free, the ¥5 one and one ¥10


def test_buy_x_get_a_named_item_free_needs_the_item_in_the_basket() -> None:
    gift = Promotion("P-GIFT", "买二送袜", "bundle", buy=2, get=1, free_sku="SOCKS", categories=frozenset({"shoes"}))
    shoes = line(1, 30_000, 4, "shoes")
    alone = price([shoes], None, book(gift), "M1", day=TUESDAY)
    assert alone.total_promotion_discount == 0
    socks = line(2, 1_500, 3, "fashion", sku="SOCKS")
    both = price([shoes, socks], None, book(gift), "M1", day=TUESDAY)
    assert both.total_promotion_discount == 3_000  # four shoes: two pairs of socks free, the third paid
    assert sum(p.net for p in both.lines) == 120_000 + 4_500 - 3_000


def test_member_price_replaces_the_tier_discount_when_it_is_better_never_both() -> None:
    prices = Promotion("P-MP", "会员价", "member_price", prices={"SKU1": 7_900, "SKU2": 9_500}, members_only=True)
    lines = [line(1, 10_000), line(2, 10_000)]
    priced = price(lines, GOLD, book(prices), "M1", day=TUESDAY)
    assert [(p.tier_discount, p.promotion_discount, p.net) for p in priced.lines] == [
        (0, 2_100, 7_900),  # member price beats 90 %
        (1_000, 0, 9_000),  # 90 % beats the member price
    ]
    assert price(lines, None, book(prices), "M1", day=TUESDAY).total_discount == 0  # no member, no member price
    assert [a.kind for a in priced.adjustments] == ["tier", "promotion"]


def test_a_promo_code_unlocks_its_promotion_and_says_why_when_it_gives_nothing() -> None:
    code = replace(SPEND_300_SAVE_50, promotion_id="P-CODE", name="Spring", code="SPRING50")
    rules = book(code)
    assert price([line(1, 40_000)], None, rules, "M1", day=TUESDAY).total_discount == 0
    given_code = price([line(1, 40_000)], None, rules, "M1", day=TUESDAY, promo_codes=["SPRING50"])
    assert given_code.total_discount == 5_000
    short = price([line(1, 20_000)], None, rules, "M1", day=TUESDAY, promo_codes=["SPRING50"])
    assert short.notices == ("promotion Spring: needs ¥300.00 of qualifying items, the basket has ¥200.00",)
    assert rules.promotion_by_code(" spring50 ") is code


def test_time_windows_dates_weekdays_and_hours_in_the_mall_s_zone() -> None:
    lunch = replace(SPEND_300_SAVE_50, weekdays=frozenset({2}), hours=(11 * 60, 14 * 60), start="2026-12-01")
    rules = book(lunch)
    basket = [line(1, 30_000)]
    assert price(basket, None, rules, "M1", day=TUESDAY, minute=12 * 60).total_discount == 5_000
    assert price(basket, None, rules, "M1", day=TUESDAY, minute=14 * 60).total_discount == 0
    assert price(basket, None, rules, "M1", day=TUESDAY).total_discount == 0  # no time: outside every window
    assert price(basket, None, rules, "M1", day=date(2026, 12, 2), minute=720).total_discount == 0  # Wednesday
    night = replace(SPEND_300_SAVE_50, hours=(22 * 60, 2 * 60))
    assert [night.in_hours(m) for m in (21 * 60, 23 * 60, 60, 2 * 60)] == [False, True, True, False]


def test_a_promotion_that_does_not_stack_refuses_coupons_once_it_gave_something() -> None:
    alone = replace(SPEND_300_SAVE_50, stack_with_coupons=False)
    coupon = CouponDefinition("C-10", "¥10 off", "amount", amount=1_000)
    priced = price([line(1, 40_000)], GOLD, book(alone), "M1", day=TUESDAY, coupons=[coupon])
    assert priced.coupons_applied == ()
    assert priced.notices == ("coupon ¥10 off: cannot be combined with the promotion 满300减50",)
    small = price([line(1, 1_000)], GOLD, book(alone), "M1", day=TUESDAY, coupons=[coupon])
    assert small.coupons_applied == ("C-10",)  # it gave nothing here: the coupon is welcome


def test_a_coupon_s_minimum_spend_counts_what_the_promotions_left() -> None:
    coupon = CouponDefinition("C-MIN", "¥20 off ¥280", "amount", amount=2_000, min_spend=28_000)
    priced = price([line(1, 30_000)], None, book(SPEND_300_SAVE_50), "M1", day=TUESDAY, coupons=[coupon])
    assert priced.coupons_applied == ()  # 300 − 50 = 250 left, under 280


def wire(**fields: Any) -> dict[str, Any]:
    base = book().to_wire()
    base["promotions"] = [{"id": "P", "kind": "spend", "steps": [[30_000, 5_000]], **fields}]
    return base


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"steps": [[100, 200]]}, "0 < off <= min_spend"),
        ({"steps": [[500, 50], [300, 80]]}, "steps go up"),
        ({"steps": []}, "at least one step"),
        ({"hours": "25:00-26:00"}, "HH:MM-HH:MM"),
        ({"hours": "10:00-10:00"}, "not a window"),
        ({"code": "spring 50"}, "does not match"),
        ({"repeat": True, "steps": [[300, 50], [500, 100]]}, "exactly one step"),
        ({"buy": 2}, "buy"),  # a bundle's field on a spend promotion: a typo is caught
        ({"funded_by": "bank"}, "mall, tenant"),
    ],
)
def test_a_rulebook_with_a_bad_promotion_is_refused_with_the_reason(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        Rulebook.from_wire(wire(**fields))


def test_promotions_survive_the_wire_and_two_may_not_share_a_code() -> None:
    promotions = (
        replace(SPEND_300_SAVE_50, code="SPRING50", hours=(600, 840), funded_by="mall"),
        Promotion("P-B", "b", "bundle", buy=3, get=1, free_sku="X"),
        Promotion("P-M", "m", "member_price", prices={"A": 100}, members_only=True, tiers=frozenset({"gold"})),
    )
    rules = book(*promotions)
    assert Rulebook.from_wire(rules.to_wire()) == rules
    assert "promotions" not in book().to_wire()  # rulebooks without them keep the form they were signed in
    twice = rules.to_wire()
    twice["promotions"].append({**twice["promotions"][0], "id": "P-OTHER"})
    with pytest.raises(SchemaError, match="each promo code unlocks one promotion"):
        Rulebook.from_wire(twice)


PROMOTIONS = (
    Promotion("P-MP", "mp", "member_price", prices={"SKU0": 500, "SKU3": 90}, members_only=True),
    Promotion("P-B", "b", "bundle", buy=2, get=1, categories=frozenset({"toys"})),
    Promotion("P-G", "g", "bundle", buy=1, get=1, free_sku="SKU5"),
    Promotion("P-S", "s", "spend", steps=(SpendStep(10_000, 1_500), SpendStep(50_000, 9_000))),
    Promotion("P-R", "r", "spend", steps=(SpendStep(3_000, 499),), repeat=True, categories=frozenset({"food"})),
)


@given(
    st.lists(
        st.tuples(st.integers(1, 200_000), st.integers(1, 9), st.sampled_from(["toys", "food", "tobacco"])),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
    st.integers(0, 3_000),
)
def test_lines_add_up_with_every_promotion_and_benefit_and_none_goes_below_zero(
    items: list[tuple[int, int, str]], member: bool, coupon_off: int
) -> None:
    lines = [line(i, p, q, c) for i, (p, q, c) in enumerate(items)]
    coupon = CouponDefinition("C", "c", "amount", amount=coupon_off)
    priced = price(lines, GOLD if member else None, book(*PROMOTIONS), "M1", day=TUESDAY, coupons=[coupon])
    for p in priced.lines:
        assert p.gross - p.tier_discount - p.promotion_discount - p.coupon_discount - p.offset == p.net >= 0
        if not p.eligible:
            assert p.discount == 0
    member_priced = {i for a in priced.adjustments if a.rule == "P-MP" for i in a.per_line}
    assert all(p.tier_discount == 0 for p in priced.lines if p.line.line_id in member_priced)  # never both
    assert priced.total_gross - priced.total_discount == priced.total_due == sum(p.net for p in priced.lines)
    by_kind = sum(a.amount for a in priced.adjustments)
    assert by_kind == priced.total_discount
    assert priced.total_promotion_discount == sum(a.amount for a in priced.adjustments if a.kind == "promotion")


def test_joy_city_worked_example_in_docs_pricing() -> None:
    """docs/pricing.md's worked example: a supreme member's ¥400 dress on a Tuesday, 满300减50, 1,000 points
    offset, paid from the member wallet."""
    rules = Rulebook.from_wire(
        {"version": 1, "currency": "CNY", "tiers": DEMO_TIERS, "excluded_categories": DEMO_EXCLUDED,
         "issuer_keys": {}, **DEMO_BENEFITS}
    )  # fmt: skip
    supreme = MemberEntry("M0002", "supreme")
    dress = BasketLine(1, "6900000000017", "Dress", "fashion", 1, 40_000)
    priced = price([dress], supreme, rules, "M-FASHION", day=TUESDAY, points_to_redeem=1_000, points_balance=5_000)
    paid = with_earning(priced, supreme, rules, "M-FASHION", day=TUESDAY, payments=[Payment("wallet", 30_000)])
    (x,) = paid.lines
    assert (x.tier_discount, x.promotion_discount, x.offset, x.net) == (4_000, 5_000, 1_000, 30_000)
    assert (paid.points_redeemed, paid.points_earned, paid.growth_earned) == (1_000, 6, 300)
    assert receipt_lines(paid)[2:6] == [
        "  supreme member price  -¥40.00",
        "  满300减50 fashion  -¥50.00",
        "  1000 points  -¥10.00",
        "to pay  ¥300.00",
    ]


def test_stored_value_and_paid_tiers_are_sold_at_face_value_whatever_promotion_runs() -> None:
    everything = Promotion("P-ALL", "满300减50 everything", "spend", steps=(SpendStep(30_000, 5_000),))
    topup = BasketLine(1, TOPUP_SKU, "Stored value", TOPUP_SKU, 1, 50_000)
    card = BasketLine(1, tier_sku("black-gold"), "Black-gold", PAID_TIER_CATEGORY, 1, 39_900)
    for sold in (topup, card):
        priced = price([sold], None, book(everything), "M1", day=TUESDAY)
        assert (priced.total_discount, priced.total_due) == (0, sold.unit_price)
