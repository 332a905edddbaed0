"""Selling stored value (充值): the rulebook's top-up rule, and the bonus a top-up is given.

A top-up is a sale of stored value to a member, paid with any tender the
rule allows (never with stored value itself). The ledger credits the
member's wallet only when it accepts the top-up record, and gives the bonus
of the highest step the amount reaches (充500送50) as a separate grant that
lapses after ``bonus_days`` (``ledger/wallet_grants.py``). A till may sell at
most ``terminal_daily_cap`` fen of stored value in one business day: the
ledger quarantines what goes past it, so a till's credentials alone can
never mint stored value beyond what a day's cash count would notice.
Amounts are integer fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocols.money import format_cny
from protocols.schema import Fields

TOPUP_SKU = "stored-value"  # the one line of a top-up record: sku and category alike
TOPUP_TENDERS = ("cash", "wechat", "alipay", "card")  # stored value never buys stored value


@dataclass(frozen=True, slots=True)
class BonusStep:
    reaching: int  # a top-up of at least this many fen …
    bonus: int  # … is given this many fen more, as a grant that lapses


@dataclass(frozen=True, slots=True)
class StoredValueRule:
    min_topup: int = 100  # ¥1
    max_topup: int = 500_000  # ¥5,000 in one top-up
    tenders: frozenset[str] = frozenset(TOPUP_TENDERS)
    bonus: tuple[BonusStep, ...] = ()  # ascending by ``reaching``
    bonus_days: int = 365
    terminal_daily_cap: int = 2_000_000  # ¥20,000 of top-ups per till and business day

    def bonus_for(self, amount: int) -> int:
        """The bonus a top-up of ``amount`` is given: the highest step it reaches (0 below the first)."""
        reached = [s.bonus for s in self.bonus if amount >= s.reaching]
        return reached[-1] if reached else 0

    def refusal(self, amount: int, tenders: list[str]) -> str | None:
        """Why a top-up of ``amount`` paid with ``tenders`` (their kinds) cannot be sold; None if it can."""
        if not self.min_topup <= amount <= self.max_topup:
            return f"a top-up is {format_cny(self.min_topup)} to {format_cny(self.max_topup)}, not {format_cny(amount)}"
        if refused := sorted(set(tenders) - self.tenders):
            return f"a top-up is paid with {', '.join(sorted(self.tenders))}, not {', '.join(refused)}"
        return None

    def to_wire(self) -> dict[str, Any]:
        return {
            "min_topup": self.min_topup,
            "max_topup": self.max_topup,
            "tenders": sorted(self.tenders),
            "bonus": [{"reaching": s.reaching, "bonus": s.bonus} for s in self.bonus],
            "bonus_days": self.bonus_days,
            "terminal_daily_cap": self.terminal_daily_cap,
        }

    @classmethod
    def read(cls, f: Fields) -> StoredValueRule:
        steps = []
        for sf in f.tables("bonus", max_items=20):
            steps.append(BonusStep(sf.integer("reaching", minimum=1, maximum=10**9), sf.integer("bonus", minimum=0)))
            sf.done()
        tenders = f.texts("tenders", list(TOPUP_TENDERS))
        rule = cls(
            min_topup=f.integer("min_topup", 100, minimum=1, maximum=10**9),
            max_topup=f.integer("max_topup", 500_000, minimum=1, maximum=10**9),
            tenders=frozenset(tenders),
            bonus=tuple(steps),
            bonus_days=f.integer("bonus_days", 365, minimum=1, maximum=3650),
            terminal_daily_cap=f.integer("terminal_daily_cap", 2_000_000, minimum=0, maximum=10**11),
        )
        f.done()
        where = f.path or "stored_value"
        if rule.min_topup > rule.max_topup:
            f.problems.add(where, "min_topup is more than max_topup")
        if bad := sorted(set(tenders) - set(TOPUP_TENDERS)):
            f.problems.add(where, f"a top-up cannot be paid with {', '.join(bad)} (only {', '.join(TOPUP_TENDERS)})")
        if [s.reaching for s in steps] != sorted({s.reaching for s in steps}):
            f.problems.add(where, "bonus steps go up by what they reach, each once")
        if any(s.bonus >= s.reaching for s in steps):
            f.problems.add(where, "a bonus is less than the top-up that earns it")
        return rule
