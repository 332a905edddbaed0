"""Capped exponential backoff with jitter, as a pure calculation.

``delay(attempt)`` grows ``base * 2**attempt`` up to ``cap`` and then takes a
random share of it between ``1 - jitter`` and 1, so that a mall full of
terminals that lost the ledger at the same moment do not all retry together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.2
    cap: float = 30.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next try; each call counts one more failure."""
        ceiling = min(self.cap, self.base * (1 << min(self.attempt, 32)))
        self.attempt += 1
        return ceiling * (1 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """A try succeeded: start again from ``base``."""
        self.attempt = 0
