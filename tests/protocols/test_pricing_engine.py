"""The pricing engine: worked examples from the operators' figures, and properties over random baskets."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.benefits import Campaign, CouponDefinition, EarnRule, OffsetRule
from protocols.pricing import BasketLine, Payment, price, receipt_lines
from protocols.rulebook import MemberEntry, Rulebook, Tier

TUESDAY, WEDNESDAY = date(2026, 11, 24), date(2026, 11, 25)
BOOK = Rulebook(
    version=3,
    currency="CNY",
    tiers={
        "classic": Tier("classic", 9500, {"M-BAKERY": 8500}),  # 缤纷: down to 85 %
        "supreme": Tier("supreme", 9000, {"M-PARTNER": 5000}, {"luxury": 9000}),  # 至尊
    },
    excluded_categories=frozenset({"gift-card", "tobacco"}),
    issuer_keys={},
    earn=EarnRule(fen_per_point=10_000, fen_per_growth=100, on_offset=False, on_stored_value=True),
    campaigns=(
        Campaign("wallet-x2", "Double points with the wallet", 20_000, payment_methods=frozenset({"wallet"})),
        Campaign("supreme-x1.5", "Supreme ×1.5", 15_000, tiers=frozenset({"supreme"})),
    ),
    offset=OffsetRule(points_per_yuan=100, weekdays=frozenset({2, 5}), cap=5_000),
)
CLASSIC, SUPREME = MemberEntry("M1", "classic"), MemberEntry("M2", "supreme")
TWENTY_OFF = CouponDefinition("C20", "¥20 off ¥200", "amount", amount=2_000, min_spend=20_000)
TART = CouponDefinition("TART", "An egg tart for 2 points", "exchange", sku="TART", points=2)
TEN_PCT = CouponDefinition("P10", "10 % off, at most ¥15", "percent", rate=1_000, ceiling=1_500, stack_with_tier=False)
SOLO = CouponDefinition("SOLO", "Solo ¥5 off", "amount", amount=500, exclusive=True)


def line(i: int, unit: int, qty: int = 1, category: str = "bakery", sku: str = "") -> BasketLine:
    return BasketLine(i, sku or f"SKU{i}", f"item {i}", category, qty, unit)


CAKE = [line(1, 3_800, 6), line(2, 4_250)]  # egg tarts ×6 at ¥38, sourdough ¥42.50


def test_classic_member_pays_85_percent_at_the_bakery() -> None:
    p = price(CAKE, CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY)
    # 22800 × 0.85 = 19380; 4250 × 0.85 = 3612.5 → 3613 (half-up)
    assert [(x.net, x.tier_discount) for x in p.lines] == [(19_380, 3_420), (3_613, 637)]
    assert (p.total_due, p.points_earned, p.growth_earned) == (22_993, 2, 229)


def test_300_points_offset_on_a_tuesday() -> None:
    p = price(CAKE, CLASSIC, BOOK, "M-BAKERY", day=TUESDAY, points_to_redeem=300, points_balance=1_000)
    assert (p.total_offset, p.points_redeemed, p.total_due) == (300, 300, 22_693)
    assert sum(x.offset for x in p.lines) == 300
    assert p.points_earned == 2  # earned on 22693 paid in money, not on the points


def test_offset_is_refused_on_a_wednesday_with_the_reason() -> None:
    p = price(CAKE, CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY, points_to_redeem=300, points_balance=1_000)
    assert (p.total_offset, p.points_redeemed) == (0, 0)
    assert p.notices == ("points offset is only on Tue, Fri",)


def test_offset_is_capped_at_half_the_bill_and_by_the_balance() -> None:
    small = [line(1, 1_000)]
    p = price(small, CLASSIC, BOOK, "M-BAKERY", day=TUESDAY, points_to_redeem=5_000, points_balance=10_000)
    assert (p.total_offset, p.points_redeemed) == (425, 425)  # net 850, cap 50 % → 425 fen = 425 points
    p = price(small, CLASSIC, BOOK, "M-BAKERY", day=TUESDAY, points_to_redeem=5_000, points_balance=120)
    assert p.points_redeemed == 120


def test_double_points_with_the_wallet_and_the_highest_multiplier_wins() -> None:
    basket = [line(1, 50_000)]
    assert price(basket, CLASSIC, BOOK, "M-OTHER", day=WEDNESDAY).points_earned == 4  # 47500 → 4
    paid = [Payment("wallet", 47_500)]
    assert price(basket, CLASSIC, BOOK, "M-OTHER", day=WEDNESDAY, payments=paid).points_earned == 9
    supreme = price(basket, SUPREME, BOOK, "M-OTHER", day=WEDNESDAY)
    assert supreme.points_earned == 6  # 45000 × 1.5 = 67500 → 6
    both = price(basket, SUPREME, BOOK, "M-OTHER", day=WEDNESDAY, payments=[Payment("wallet", 45_000)])
    assert both.points_earned == 9  # ×2 wins over ×1.5; they do not compound to ×3
    assert both.lines[0].multiplier == 20_000


def test_coupon_minimum_spend_and_allocation() -> None:
    below = price([line(1, 20_000)], CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY, coupons=[TWENTY_OFF])
    assert below.total_coupon_discount == 0
    assert below.notices == ("coupon ¥20 off ¥200: needs ¥200.00 of qualifying items, the basket has ¥170.00",)
    big = [line(1, 30_000), line(2, 10_000)]
    p = price(big, CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY, coupons=[TWENTY_OFF])
    assert [x.coupon_discount for x in p.lines] == [1_500, 500]  # pro rata by net 25500 : 8500
    assert p.total_due == 34_000 - 2_000


def test_a_tart_for_two_points() -> None:
    basket = [line(1, 800, 2, sku="TART"), line(2, 4_250)]
    p = price(basket, CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY, coupons=[TART], points_balance=5)
    assert p.lines[0].coupon_discount == 680  # one tart, at its member price (800 × 0.85)
    assert p.points_redeemed == 2
    refused = price(basket, CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY, coupons=[TART], points_balance=1)
    assert refused.points_redeemed == 0
    assert "needs 2 points" in refused.notices[0]


def test_a_coupon_that_does_not_stack_replaces_the_tier_discount() -> None:
    p = price([line(1, 10_000)], CLASSIC, BOOK, "M-BAKERY", day=WEDNESDAY, coupons=[TEN_PCT])
    assert (p.lines[0].tier_discount, p.lines[0].coupon_discount, p.total_due) == (0, 1_000, 9_000)


def test_exclusive_coupons_and_excluded_categories() -> None:
    basket = [line(1, 10_000), line(2, 20_000, category="gift-card")]
    p = price(
        basket,
        CLASSIC,
        BOOK,
        "M-BAKERY",
        day=TUESDAY,
        coupons=[SOLO, TEN_PCT],
        points_to_redeem=10_000,
        points_balance=10_000,
    )
    assert p.coupons_applied == ("SOLO",)
    assert "cannot be combined" in p.notices[0]
    gift = p.lines[1]
    assert (gift.discount, gift.net, gift.eligible) == (0, 20_000, False)
    assert p.points_earned == 0  # 8500 − 500 − offset: under ¥100; the gift card earns nothing


def test_receipt_names_every_rule() -> None:
    p = price(CAKE, CLASSIC, BOOK, "M-BAKERY", day=TUESDAY, points_to_redeem=300, points_balance=300)
    text = "\n".join(receipt_lines(p))
    assert "classic member price  -¥40.57" in text
    assert "300 points  -¥3.00" in text
    assert "to pay  ¥226.93" in text


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[BasketLine], dict[str, object]]:
    n = draw(st.integers(1, 12))
    categories = ["bakery", "luxury", "gift-card", "food"]
    lines = [
        line(
            i,
            draw(st.integers(0, 10**7)),
            draw(st.integers(1, 50)),
            draw(st.sampled_from(categories)),
            draw(st.sampled_from(["TART", f"S{i}"])),
        )
        for i in range(1, n + 1)
    ]
    coupons = draw(st.lists(st.sampled_from([TWENTY_OFF, TART, TEN_PCT, SOLO]), max_size=3))
    kwargs: dict[str, object] = {
        "day": draw(st.sampled_from([TUESDAY, WEDNESDAY])),
        "coupons": coupons,
        "points_to_redeem": draw(st.integers(0, 10**6)),
        "points_balance": draw(st.integers(0, 10**6)),
    }
    return lines, kwargs


@settings(max_examples=300)
@given(scenarios(), st.sampled_from([None, CLASSIC, SUPREME]), st.sampled_from(["M-BAKERY", "M-PARTNER", "M-X"]))
def test_properties_over_random_baskets(
    scenario: tuple[list[BasketLine], dict[str, object]], member: MemberEntry | None, merchant: str
) -> None:
    lines, kwargs = scenario
    p = price(lines, member, BOOK, merchant, **kwargs)  # type: ignore[arg-type]
    for x in p.lines:
        assert x.gross == x.line.unit_price * x.line.quantity
        assert x.net == x.gross - x.tier_discount - x.coupon_discount - x.offset
        assert x.net >= 0
        assert min(x.tier_discount, x.coupon_discount, x.offset) >= 0
        if not x.eligible:
            assert x.discount == 0
    assert p.total_due == sum(x.net for x in p.lines)
    assert p.total_gross - p.total_discount == p.total_due
    assert sum(a.amount for a in p.adjustments) == p.total_discount
    assert p.points_redeemed <= int(kwargs["points_balance"])  # type: ignore[call-overload]
    assert p.total_offset * 2 <= sum(x.net + x.offset for x in p.lines if x.eligible)  # cap 50 %
    assert price(lines, member, BOOK, merchant, **kwargs) == p  # type: ignore[arg-type]
    if member is None:
        assert (p.points_earned, p.points_redeemed, p.total_tier_discount) == (0, 0, 0)
