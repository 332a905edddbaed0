"""How soon a terminal refreshes its rules and members after a notice.

A notice reaches every terminal of a mall at the same instant, and the ledger
announces a new member revision after every batch that changes a balance.
Answered at once, a mall's terminals would all fetch together, again and
again while sales flow. So a terminal leaves at least ``min_interval``
seconds between two refreshes, plus a random part of half of it: the
ledger sees the fleet's fetches spread out, at most about one per terminal
per interval, and news still arrives within 1.5 intervals. Sans I/O: the
caller sleeps.
"""

from __future__ import annotations

import random


class RefreshPacer:
    def __init__(self, min_interval: float, rng: random.Random | None = None) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must not be negative")
        self.min_interval = min_interval
        self._rng = rng or random.Random()
        self._last: float | None = None  # when the last refresh started (monotonic seconds)

    def wait(self, now: float) -> float:
        """Seconds to wait, from ``now``, before the refresh a notice asks for."""
        if self.min_interval == 0:
            return 0.0
        jitter = self._rng.uniform(0.0, self.min_interval / 2)
        if self._last is None:
            return jitter
        return max(self._last + self.min_interval - now, 0.0) + jitter

    def refreshed(self, now: float) -> None:
        """A refresh starts at ``now``."""
        self._last = now
