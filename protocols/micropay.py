"""The "micropay" (scan-to-pay) state machine, as the Chinese wallets define it, sans I/O.

The cashier scans the customer's payment code; the terminal asks the
provider to pay. The answer is a success, a failure, "user paying" (the
customer is typing a password), or nothing at all (a timeout, a dead network,
a 500): that last one is *unknown*, never a failure, because the money may
have moved. While the outcome is open the terminal polls ``query`` with
backoff until the provider says something final or the deadline passes; then
it reverses (cancels), which the provider applies whether or not the payment
arrived. A provider that *answered* the pay call with an error (it has the
request) and then says it holds no such payment has said something final:
the terminal reverses at once instead of waiting out the deadline. After no
answer at all, "no such payment" may only mean "not yet", and the wait goes on.
A payment is therefore always one of: paid, declined (nothing
charged), reversed (nothing charged), or, if even reversing keeps failing,
``attention`` — the cashier and the operator are told that money may be held
and must be settled by hand. Nothing is ever silently dropped.

The flow holds no clock and does no I/O: the caller tells it the time and
what the provider answered, and asks what to do next.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from protocols.errors import FinalError


class MicropayError(FinalError):
    code = "micropay-state"


class Answer(enum.StrEnum):
    """What a provider call came back with."""

    SUCCESS = "success"
    FAILED = "failed"  # a final refusal: nothing was charged
    USER_PAYING = "user_paying"
    NOT_FOUND = "not_found"  # query only: the provider has no such payment (yet)
    UNKNOWN = "unknown"  # timeout, network error, 5xx, garbage: it may not even have arrived
    # The provider answered, believed, with an error (SYSTEMERROR, ACQ.SYSTEM_ERROR): it has the request, and
    # did not say what became of it. As open as unknown, but a "no such payment" after it is final.
    PROVIDER_ERROR = "provider_error"
    # No connection could be made: the request never left the terminal. On pay,
    # nothing can have been charged, so the cashier hears "no network" at once.
    UNREACHABLE = "unreachable"


class Step(enum.StrEnum):
    PAY = "pay"
    QUERY = "query"
    REVERSE = "reverse"
    REFUND = "refund"  # give back part of a paid payment (protocols/refund.py); not a step of the pay flow
    DONE = "done"


class Outcome(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    DECLINED = "declined"
    REVERSED = "reversed"
    UNREACHABLE = "unreachable"  # the provider could not be reached to pay: nothing charged
    ATTENTION = "attention"  # reversal kept failing: money may be held; settle by hand


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's answer to one call."""

    answer: Answer
    # What a provider may tell of a payment and the gateway may keep: for a bank
    # card the scheme, the masked PAN and the authorisation code. Never a full PAN.
    detail: dict[str, str] = field(default_factory=dict)
    # What the provider said and whether its signature checked, for the payment's history (never a secret).
    note: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    step: Step
    at: float  # when to do it (the caller's clock)


POLL_DELAYS = (1.0, 2.0, 3.0, 5.0)  # then every 5 s until the deadline


@dataclass
class MicropayFlow:
    """One payment's life. Feed it answers; it says what to do next."""

    started: float
    deadline: float = 30.0  # seconds after ``started`` to stop waiting and reverse
    max_reversals: int = 5
    outcome: Outcome = Outcome.PENDING
    history: list[tuple[float, str]] = field(default_factory=list)
    _next: Action | None = None
    _polls: int = 0
    _reversals: int = 0
    _heard: bool = False  # the provider answered the pay call itself: a "no such payment" after it is final

    def __post_init__(self) -> None:
        self._next = Action(Step.PAY, self.started)

    @classmethod
    def paid(cls, now: float, deadline: float = 30.0) -> MicropayFlow:
        """A payment already known to be paid (from the journal), ready to be unwound."""
        flow = cls(now, deadline=deadline)
        flow.outcome = Outcome.PAID
        flow._note(now, "paid")
        return flow

    def next_action(self) -> Action:
        if self.outcome is not Outcome.PENDING:
            return Action(Step.DONE, self.history[-1][0] if self.history else self.started)
        assert self._next is not None
        return self._next

    def _note(self, now: float, what: str) -> None:
        self.history.append((now, what))

    def remark(self, now: float, what: str) -> None:
        """A line of the payment's history the flow does not act on: what a provider said, in its words."""
        self._note(now, what)

    def _expect(self, step: Step) -> None:
        current = self.next_action().step
        if current is not step:
            raise MicropayError(f"got a {step} answer while the flow expects {current}")

    def _poll_or_reverse(self, now: float) -> None:
        if now >= self.started + self.deadline:
            self._next = Action(Step.REVERSE, now)
            return
        delay = POLL_DELAYS[min(self._polls, len(POLL_DELAYS) - 1)]
        self._polls += 1
        self._next = Action(Step.QUERY, min(now + delay, self.started + self.deadline))

    def on_pay(self, answer: Answer, now: float) -> None:
        if answer is Answer.NOT_FOUND:
            raise MicropayError("a pay call cannot answer not_found")
        if answer is Answer.UNREACHABLE:
            self._expect(Step.PAY)
            self._note(now, f"pay: {answer}")
            self.outcome = Outcome.UNREACHABLE
            return
        self._heard = answer in (Answer.PROVIDER_ERROR, Answer.USER_PAYING)
        self._answer(Step.PAY, answer, now)

    def on_query(self, answer: Answer, now: float) -> None:
        if answer is Answer.NOT_FOUND and self._heard:
            # The provider had the pay request and now says it holds no such payment: nothing was charged, and
            # waiting will not change that. Reverse at once (it closes the order, if any), not at the deadline.
            self._expect(Step.QUERY)
            self._note(now, "query: not_found (after the provider answered pay: final)")
            self._next = Action(Step.REVERSE, now)
            return
        self._answer(Step.QUERY, answer, now)

    def _answer(self, step: Step, answer: Answer, now: float) -> None:
        self._expect(step)
        self._note(now, f"{step}: {answer}")
        if answer is Answer.SUCCESS:
            self.outcome = Outcome.PAID
        elif answer is Answer.FAILED:
            self.outcome = Outcome.DECLINED
        else:  # user paying, not there yet, or no answer: the money may be moving
            self._poll_or_reverse(now)

    def unwind(self, now: float) -> None:
        """Give a paid payment back (its sale will not be made): reverse it, with the usual retries."""
        if self.outcome is not Outcome.PAID:
            raise MicropayError(f"only a paid payment is unwound, not a {self.outcome} one")
        self.outcome, self._reversals = Outcome.PENDING, 0
        self._next = Action(Step.REVERSE, now)
        self._note(now, "unwind")

    def on_reverse(self, answer: Answer, now: float) -> None:
        """``SUCCESS``: cancelled (nothing charged, or refunded by the provider)."""
        self._expect(Step.REVERSE)
        self._note(now, f"reverse: {answer}")
        self._reversals += 1
        if answer is Answer.SUCCESS:
            self.outcome = Outcome.REVERSED
        elif self._reversals >= self.max_reversals:
            self.outcome = Outcome.ATTENTION
        else:
            self._next = Action(Step.REVERSE, now + min(2.0**self._reversals, 30.0))

    def on_restart(self, now: float) -> None:
        """The terminal restarted mid-payment: find out by query, then carry on as usual."""
        if self.outcome is Outcome.PENDING and self.next_action().step is Step.PAY:
            # The pay request may or may not have left; querying is always safe.
            self._next = Action(Step.QUERY, now)
        self._note(now, "restart")
