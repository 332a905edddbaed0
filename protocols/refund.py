"""Giving money back to the wallet or card that paid, sans I/O.

A refund request carries its own reference (the same reference again is the
same refund at the provider, never a second one). The provider answers
success (refunded), failed (refused: the till pays that part in cash), or
nothing clear: then the same request is sent again with backoff, and after
the last try the refund is ``refund_unknown``: it may or may not have gone
through, and store IT settles it with the provider. Nothing is dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from protocols.micropay import Action, Answer, MicropayError, Step

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds between tries of an unclear refund


class RefundOutcome(enum.StrEnum):
    PENDING = "refund_pending"
    REFUNDED = "refunded"
    REFUSED = "refund_refused"
    UNKNOWN = "refund_unknown"


@dataclass
class RefundFlow:
    started: float
    delays: tuple[float, ...] = RETRY_DELAYS  # seconds before each further try
    outcome: RefundOutcome = RefundOutcome.PENDING
    history: list[tuple[float, str]] = field(default_factory=list)
    _at: float = 0.0
    _tries: int = 0

    def __post_init__(self) -> None:
        self._at = self.started

    def next_action(self) -> Action:
        if self.outcome is not RefundOutcome.PENDING:
            return Action(Step.DONE, self.history[-1][0] if self.history else self.started)
        return Action(Step.REFUND, self._at)

    def on_refund(self, answer: Answer, now: float) -> None:
        if self.outcome is not RefundOutcome.PENDING:
            raise MicropayError(f"a refund answer came after the refund was {self.outcome}")
        self.history.append((now, f"refund: {answer}"))
        if answer is Answer.SUCCESS:
            self.outcome = RefundOutcome.REFUNDED
        elif answer is Answer.FAILED:
            self.outcome = RefundOutcome.REFUSED
        elif self._tries >= len(self.delays):
            self.outcome = RefundOutcome.UNKNOWN
        else:
            self._at = now + self.delays[self._tries]
            self._tries += 1
