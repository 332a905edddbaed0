"""The mall's controls on earning (seed 003's fraud controls): daily caps, and what a surge is.

``controls`` in the rulebook, every figure optional (0 or absent: no cap):

- ``member_daily_points`` / ``member_daily_growth``: what one member may earn
  in a business day; the excess of a sale past it is *held for review*
  (``ledger/controls.py``), never dropped: an operator releases or rejects it.
- ``terminal_daily_points``: what one till may issue in a business day (the
  source: a till's credentials alone issue no more than this unseen).
- ``surge_factor`` with ``surge_floor``: a member or till whose points today
  pass ``surge_floor`` and ``surge_factor`` times their daily average over
  the 30 days before is a *surge*: raised as an alert, once a day each.

Points are counted as the ledger credits them (held points are not earned
until released). Pure values and their parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocols.schema import Fields

SURGE_DAYS = 30  # the usual rate: the daily average over this many days before the day


@dataclass(frozen=True, slots=True)
class Controls:
    member_daily_points: int = 0
    member_daily_growth: int = 0
    terminal_daily_points: int = 0
    surge_factor: int = 0  # 0: no surge alerts
    surge_floor: int = 1_000  # points in a day below which nothing is a surge

    def to_wire(self) -> dict[str, Any]:
        return {
            "member_daily_points": self.member_daily_points,
            "member_daily_growth": self.member_daily_growth,
            "terminal_daily_points": self.terminal_daily_points,
            "surge_factor": self.surge_factor,
            "surge_floor": self.surge_floor,
        }

    @classmethod
    def read(cls, f: Fields) -> Controls:
        controls = cls(
            f.integer("member_daily_points", 0, minimum=0, maximum=10**12),
            f.integer("member_daily_growth", 0, minimum=0, maximum=10**12),
            f.integer("terminal_daily_points", 0, minimum=0, maximum=10**12),
            f.integer("surge_factor", 0, minimum=0, maximum=1_000),
            f.integer("surge_floor", 1_000, minimum=1, maximum=10**12),
        )
        f.done()
        return controls

    def surge(self, today: int, before: int) -> bool:
        """Whether ``today``'s points are a surge against ``before``, the points of the 30 days before."""
        if not self.surge_factor or today < self.surge_floor:
            return False
        return today * SURGE_DAYS > self.surge_factor * before
