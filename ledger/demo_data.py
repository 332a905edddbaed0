"""The demo mall: three tiers modelled on the operators' real ones, a few members.

Tier rates follow DOMAIN.md: the entry tier pays 95 % (85 % at the bakery),
the top tier 90 % (50 % at one partner shop), a luxury tier 90 % at luxury
brands. Gift cards and tobacco are never discounted.
"""

from __future__ import annotations

from typing import Any

from protocols.rulebook import MemberEntry

# Growth value (1 a yuan paid) moves members up the classic → supreme ladder within a
# year, and the yearly review sets their tier to what the year reached; radiant is
# by invitation, off the ladder.
DEMO_TIERS: dict[str, Any] = {
    "classic": {"default_rate": 9500, "merchant_rates": {"M-BAKERY": 8500}, "growth": 0},
    "supreme": {"default_rate": 9000, "merchant_rates": {"M-PARTNER": 5000}, "growth": 50_000},
    "radiant": {"default_rate": 10000, "merchant_rates": {"M-LUXURY": 9000}},
    # Kidswant's paid card: ¥199 a year, refundable within 7 days; no discount, 1.5× points (a campaign below).
    "black-gold": {"default_rate": 10000, "price": 19_900, "validity_days": 365, "refund_days": 7},
}

# Card numbers of the demo's physical member cards, and a UID-only card.
DEMO_CARD_M0002 = "8600000002"
DEMO_UID_M0003 = "04a1b2c3d4e5f6"
DEMO_CARD_FROZEN = "8600000099"

# Phone numbers the demo members registered with (kept at the ledger only as salted hashes).
DEMO_PHONES = {"M0001": "13800000001", "M0002": "13800000002"}

# Stored value (fen) topped up in the member app: M0001 ¥500, M0002 ¥1,000.
DEMO_MEMBERS = [
    MemberEntry("M0001", "classic", wallet=50_000),
    MemberEntry("M0002", "supreme", identifiers=(f"card:{DEMO_CARD_M0002}",), wallet=100_000),
    MemberEntry("M0003", "radiant", identifiers=(f"uid:{DEMO_UID_M0003}",)),
    MemberEntry("M0099", "classic", "frozen", identifiers=(f"card:{DEMO_CARD_FROZEN}",)),
]

DEMO_EXCLUDED = ["gift-card", "tobacco"]

# Joy City's: 100 points = ¥1 on Tuesdays and Fridays, up to half the bill;
# double points paying with the member wallet; the paid black-gold style tier ×1.5.
DEMO_BENEFITS: dict[str, Any] = {
    "earn": {"fen_per_point": 10_000, "fen_per_growth": 100, "on_offset": False, "on_stored_value": True},
    "campaigns": [
        {
            "id": "wallet-double",
            "name": "Double points with the member wallet",
            "multiplier": 20_000,
            "payment_methods": ["wallet"],
        },
        {"id": "supreme-1.5", "name": "Supreme members earn ×1.5", "multiplier": 15_000, "tiers": ["supreme"]},
        {"id": "black-gold-1.5", "name": "Black-gold members earn ×1.5", "multiplier": 15_000, "tiers": ["black-gold"]},
    ],
    "offset": {"points_per_yuan": 100, "weekdays": [2, 5], "cap": 5_000, "min_balance": 0},
    # Wangfujing's: top up ¥500, get ¥50 more (¥1,000: ¥120), the bonus lapsing after a year; a till sells at
    # most ¥20,000 of stored value a day.
    "stored_value": {
        "min_topup": 10_000,
        "max_topup": 500_000,
        "bonus": [{"reaching": 50_000, "bonus": 5_000}, {"reaching": 100_000, "bonus": 12_000}],
        "bonus_days": 365,
        "terminal_daily_cap": 2_000_000,
    },
    # Seed 003's controls: a member earns at most 20,000 points (¥2,000,000 spent) a day and a till issues at most
    # 500,000, the rest held for review; a member or till earning 20× its usual and at least 20,000 in a day is
    # a surge.
    "controls": {
        "member_daily_points": 20_000,
        "member_daily_growth": 2_000_000,
        "terminal_daily_points": 500_000,
        "surge_factor": 20,
        "surge_floor": 20_000,
    },
    # Wangfujing's gift cards (购物卡): ¥50 to ¥5,000 a load, at most ¥10,000 on a card, three years from the first
    # load; a till loads at most ¥20,000 a day.
    "gift_cards": {
        "min_load": 5_000,
        "max_load": 500_000,
        "max_balance": 1_000_000,
        "validity_days": 1_095,
        "terminal_daily_cap": 2_000_000,
    },
    # The tenant settlement: tenants bear half the value of the points their sales issue; the mall its coupons.
    "settlement": {"tenant_points_share": 5_000, "coupons_funded_by": "mall"},
    # Offline, a member may spend at most 500 points a sale and 1,000 points over 2 sales per till,
    # and ¥300 of stored value a sale, ¥500 in all per till.
    "risk": {
        "max_points_per_sale": 500,
        "max_member_points": 1_000,
        "max_member_sales": 2,
        "max_offline_hours": 24,
        "max_wallet_per_sale": 30_000,
        "max_member_wallet": 50_000,
    },
    # Promotions for everyone (``protocols/promotions.py``): Joy City's fashion floor runs 满300减50 / 满500减100,
    # borne by the mall; the toy shop buy two, get the cheapest third free; members pay ¥39 for the bakery's
    # gift box (¥48); the flyer's code SPRING20 takes ¥20 off ¥150 anywhere. (Promotions may also be limited to
    # dates, weekdays and hours of the day: the demo's run at any time, so that it tells the same story.)
    "promotions": [
        {
            "id": "P-FASHION-300-50",
            "name": "满300减50 fashion",
            "kind": "spend",
            "steps": [[30_000, 5_000], [50_000, 10_000]],
            "merchants": ["M-FASHION"],
            "funded_by": "mall",
        },
        {
            "id": "P-TOYS-B2G1",
            "name": "Buy 2 get 1 free",
            "kind": "bundle",
            "buy": 2,
            "get": 1,
            "merchants": ["M-TOYS"],
        },
        {
            "id": "P-GIFTBOX-MEMBER",
            "name": "Member price gift box",
            "kind": "member_price",
            "prices": {"6901234567809": 3_900},
        },
        {
            "id": "P-SPRING20",
            "name": "Spring flyer ¥20 off ¥150",
            "kind": "spend",
            "steps": [[15_000, 2_000]],
            "code": "SPRING20",
            "funded_by": "mall",
        },
    ],
    "coupons": [
        {
            "id": "C-20-OFF-200",
            "name": "¥20 off ¥200 at the bakery",
            "kind": "amount",
            "amount": 2_000,
            "min_spend": 20_000,
            "merchants": ["M-BAKERY"],
        },
        {
            "id": "C-TART-2PTS",
            "name": "An egg tart for 2 points",
            "kind": "exchange",
            "sku": "6901234567892",
            "points": 2,
        },
    ],
}
