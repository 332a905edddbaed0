"""The demo mall: three tiers modelled on the operators' real ones, a few members.

Tier rates follow DOMAIN.md: the entry tier pays 95 % (85 % at the bakery),
the top tier 90 % (50 % at one partner shop), a luxury tier 90 % at luxury
brands. Gift cards and tobacco are never discounted.
"""

from __future__ import annotations

from typing import Any

from protocols.rulebook import MemberEntry

DEMO_TIERS: dict[str, Any] = {
    "classic": {"default_rate": 9500, "merchant_rates": {"M-BAKERY": 8500}},
    "supreme": {"default_rate": 9000, "merchant_rates": {"M-PARTNER": 5000}},
    "radiant": {"default_rate": 10000, "merchant_rates": {"M-LUXURY": 9000}},
}

DEMO_MEMBERS = [
    MemberEntry("M0001", "classic"),
    MemberEntry("M0002", "supreme"),
    MemberEntry("M0003", "radiant"),
    MemberEntry("M0099", "classic", "frozen"),
]

DEMO_EXCLUDED = ["gift-card", "tobacco"]
