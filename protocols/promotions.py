"""Promotions for everyone: rules in the rulebook that need no coupon of the customer's own.

Three kinds (``docs/pricing.md`` has the order in which they meet the other benefits):

- ``spend`` (满减): money off once the scoped items reach a threshold. Stepped
  (``steps``: spend ¥300 save ¥50, spend ¥500 save ¥100; the highest step
  reached applies) or repeated (``repeat``: ¥50 off *every* full ¥300, at most
  ``max_off``).
- ``bundle`` (buy X get Y): for every ``buy`` units of the scoped items,
  ``get`` units free: the cheapest units of the group (``free_sku`` empty), or
  units of the named item ``free_sku`` the basket holds.
- ``member_price`` (会员价): a member pays ``prices[sku]`` a unit, where that is
  better than their tier discount (the better of the two, never both).

Every kind may be limited in time (dates, ISO weekdays, a daily window of
hours in the mall's zone), in place (merchants), in goods (categories, SKUs),
in people (members only, tiers) and to those who show a promo code (typed, or
scanned as ``PR1.<code>``). Money is integer fen. Pure values and their
parsing; ``protocols/pricing/promotions.py`` works out what they give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from protocols.schema import Fields

PROMOTION_KINDS = ("spend", "bundle", "member_price")
FUNDERS = ("mall", "tenant")  # who bears a discount, for the tenant settlement
CODE_PATTERN = r"[A-Z0-9][A-Z0-9_-]{2,31}"  # what a cashier can type: upper case, digits, - and _
PROMO_PREFIX = "PR1."  # a promo code printed as a QR or barcode: ``PR1.SPRING50``
_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")
MAX_FEN = 10**10


def normal_code(text: str) -> str:
    """A promo code as the rulebook spells it: typed codes are matched without case or spaces."""
    return text.strip().upper()


@dataclass(frozen=True, slots=True)
class SpendStep:
    min_spend: int  # fen of scoped items needed
    off: int  # fen off


@dataclass(frozen=True, slots=True)
class Promotion:
    promotion_id: str
    name: str
    kind: str  # spend | bundle | member_price
    start: str | None = None  # first business day, YYYY-MM-DD
    end: str | None = None  # last business day
    weekdays: frozenset[int] = frozenset()
    hours: tuple[int, int] | None = None  # minutes after the mall's midnight: [from, to); from > to wraps midnight
    merchants: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    members_only: bool = False
    tiers: frozenset[str] = frozenset()
    code: str | None = None  # applies only to a basket the code was given to
    steps: tuple[SpendStep, ...] = ()  # spend: ascending by min_spend
    repeat: bool = False  # spend: the one step, for every full min_spend
    max_off: int = 0  # spend with repeat: most fen off (0: no limit)
    buy: int = 0  # bundle
    get: int = 0  # bundle
    free_sku: str = ""  # bundle: the item given; empty: the cheapest units of the group
    prices: dict[str, int] = field(default_factory=dict)  # member_price: sku -> unit price, fen
    stack_with_coupons: bool = True  # False: no coupon joins a basket this promotion gave something to
    funded_by: str = "tenant"  # mall | tenant: who bears the discount (the tenant settlement)

    def refusal(
        self, day: date, minute: int | None, merchant: str, tier: str | None, codes: frozenset[str]
    ) -> str | None:
        """``None`` when this promotion may apply to a basket now; otherwise why not, for the cashier."""
        iso = day.isoformat()
        if self.code is not None and self.code not in codes:
            return "needs its promo code"
        if (self.start and iso < self.start) or (self.end and iso > self.end):
            return f"runs {self.start or '…'} to {self.end or '…'} only"
        if self.weekdays and day.isoweekday() not in self.weekdays:
            names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            return "runs on " + ", ".join(names[d - 1] for d in sorted(self.weekdays)) + " only"
        if self.hours is not None and (minute is None or not self.in_hours(minute)):
            return f"runs {_clock(self.hours[0])}-{_clock(self.hours[1])} only"
        if self.merchants and merchant not in self.merchants:
            return "not at this shop"
        if (self.members_only or self.tiers) and tier is None:
            return "for members only"
        if self.tiers and tier not in self.tiers:
            return "not for this member's tier"
        return None

    def in_hours(self, minute: int) -> bool:
        assert self.hours is not None
        start, end = self.hours
        return start <= minute < end if start <= end else (minute >= start or minute < end)

    def covers(self, sku: str, category: str) -> bool:
        return (not self.categories or category in self.categories) and (not self.skus or sku in self.skus)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": self.promotion_id,
            "name": self.name,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "weekdays": sorted(self.weekdays),
            "hours": None if self.hours is None else f"{_clock(self.hours[0])}-{_clock(self.hours[1])}",
            "merchants": sorted(self.merchants),
            "categories": sorted(self.categories),
            "skus": sorted(self.skus),
            "members_only": self.members_only,
            "tiers": sorted(self.tiers),
            "code": self.code,
            "stack_with_coupons": self.stack_with_coupons,
            "funded_by": self.funded_by,
        }
        if self.kind == "spend":
            wire.update(steps=[[s.min_spend, s.off] for s in self.steps], repeat=self.repeat, max_off=self.max_off)
        elif self.kind == "bundle":
            wire.update(buy=self.buy, get=self.get, free_sku=self.free_sku)
        else:
            wire.update(prices=dict(sorted(self.prices.items())))
        return wire

    @classmethod
    def read(cls, f: Fields) -> Promotion:
        kind = f.text("kind", choices=PROMOTION_KINDS)
        hours_text = f.optional_text("hours", max_len=11)
        hours = _hours(f, hours_text)
        code = f.optional_text("code", max_len=32, pattern=CODE_PATTERN)
        steps = tuple(_steps(f)) if kind == "spend" else ()
        promotion = cls(
            f.text("id", max_len=64),
            f.text("name", "", max_len=200),
            kind,
            f.optional_text("start", pattern=r"\d{4}-\d{2}-\d{2}"),
            f.optional_text("end", pattern=r"\d{4}-\d{2}-\d{2}"),
            frozenset(f.integer_list("weekdays", minimum=1, maximum=7)),
            hours,
            frozenset(f.texts("merchants")),
            frozenset(f.texts("categories")),
            frozenset(f.texts("skus")),
            f.flag("members_only", kind == "member_price"),
            frozenset(f.texts("tiers")),
            code,
            steps,
            f.flag("repeat", False) if kind == "spend" else False,
            f.integer("max_off", 0, minimum=0, maximum=MAX_FEN) if kind == "spend" else 0,
            f.integer("buy", 1, minimum=1, maximum=1000) if kind == "bundle" else 0,
            f.integer("get", 1, minimum=1, maximum=1000) if kind == "bundle" else 0,
            f.text("free_sku", "", max_len=64) if kind == "bundle" else "",
            f.int_map("prices", maximum=MAX_FEN) if kind == "member_price" else {},
            f.flag("stack_with_coupons", True),
            f.text("funded_by", "tenant", choices=FUNDERS),
        )
        f.done()
        if kind == "spend" and not steps:
            f.problems.add(f.path, "a spend promotion needs at least one step [min_spend, off]")
        if promotion.repeat and len(steps) != 1:
            f.problems.add(f.path, "a repeated spend promotion has exactly one step (¥off for every full ¥min)")
        if kind == "member_price" and not promotion.prices:
            f.problems.add(f.path, "a member_price promotion needs prices {sku: fen}")
        if kind == "member_price" and not promotion.members_only:
            f.problems.add(f.path, "a member price is for members only")
        return promotion


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _hours(f: Fields, text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = _HOURS.fullmatch(text)
    if m is None:
        f.problems.add(f"{f.path}.hours", f"{text!r} is not HH:MM-HH:MM")
        return None
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    if end > 24 * 60 or start == end:
        f.problems.add(f"{f.path}.hours", f"{text!r} is not a window of the day")
        return None
    return start, end


def _steps(f: Fields) -> list[SpendStep]:
    steps = []
    for i, item in enumerate(f.items("steps", max_items=20)):
        given: list[object] = item if isinstance(item, list) else []
        pair = [v for v in given if type(v) is int and 0 < v <= MAX_FEN]
        if len(given) != 2 or len(pair) != 2 or pair[1] > pair[0]:
            f.problems.add(f"{f.path}.steps[{i}]", "a step is [min_spend, off] in fen, 0 < off <= min_spend")
            continue
        steps.append(SpendStep(pair[0], pair[1]))
    if [s.min_spend for s in steps] != sorted({s.min_spend for s in steps}):
        f.problems.add(f"{f.path}.steps", "steps go up: each min_spend above the one before")
    if [s.off for s in steps] != sorted({s.off for s in steps}):
        f.problems.add(f"{f.path}.steps", "a higher step gives more off")
    return steps
