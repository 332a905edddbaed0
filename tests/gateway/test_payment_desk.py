"""The payment desk with an in-memory provider: no process, no socket; its journal is a file in tmp_path."""

from __future__ import annotations

import pytest

from gateway.errors import ConflictError, PaymentCodeError, PaymentUnavailableError
from gateway.events import EventHub, PaymentStep
from gateway.payments.desk import PaymentDesk
from offline_queue.errors import IdempotencyConflictError
from offline_queue.journal import TransactionJournal
from offline_queue.limits import JournalLimits
from protocols.micropay import Answer, Outcome, Reply, Step

WECHAT_CODE = "134567890123456789"


class ScriptedProvider:
    """Answers each step from a script (a step not scripted answers SUCCESS); remembers every call."""

    name = "scripted"

    def __init__(self, **answers: Answer) -> None:
        self.answers = {Step(k): v for k, v in answers.items()}
        self.calls: list[tuple[Step, str, int]] = []

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        self.calls.append((step, ref, amount))
        return Reply(self.answers.get(step, Answer.SUCCESS))

    async def close(self) -> None:
        pass


def desk_with(journal: TransactionJournal, provider: ScriptedProvider, hub: EventHub | None = None) -> PaymentDesk:
    limits = JournalLimits(max_records=1000, max_bytes=10**9, max_pending_age=10**9)
    return PaymentDesk({"wechat": provider}, journal, hub or EventHub(), limits, deadline=5.0, currency="CNY")


async def test_a_paid_payment_is_journaled_before_the_provider_is_asked_and_reported_step_by_step(
    journal: TransactionJournal,
) -> None:
    hub, steps = EventHub(), []
    hub.listeners.append(lambda e: steps.append(e) if isinstance(e, PaymentStep) else None)
    provider = ScriptedProvider()
    desk = desk_with(journal, provider, hub)
    begun = await desk.begin("B1", 5_000, WECHAT_CODE, None, "pay-00000001")
    assert begun.state is Outcome.PENDING
    assert await desk.earlier("B1", "pay-00000001", WECHAT_CODE) is not None  # on disk before the call
    done = await desk.outcome(begun)
    assert (done.state, done.amount, provider.calls[0][0]) == (Outcome.PAID, 5_000, Step.PAY)
    assert [s.step for s in steps[:1]] == ["pay"]
    assert (steps[-1].outcome, steps[-1].message) == ("paid", "paid")
    with pytest.raises(IdempotencyConflictError, match="another basket"):
        await desk.earlier("B2", "pay-00000001", WECHAT_CODE)
    with pytest.raises(IdempotencyConflictError, match="different payment"):
        await desk.earlier("B1", "pay-00000001", WECHAT_CODE, 4_999)


async def test_a_declined_payment_charges_nothing_and_a_paid_one_is_given_back(
    journal: TransactionJournal,
) -> None:
    declined = desk_with(journal, ScriptedProvider(pay=Answer.FAILED))
    intent = await declined.outcome(await declined.begin("B1", 100, WECHAT_CODE, None, "pay-00000001"))
    assert intent.state is Outcome.DECLINED
    provider = ScriptedProvider()
    desk = desk_with(journal, provider)
    paid = await desk.outcome(await desk.begin("B2", 100, WECHAT_CODE, None, "pay-00000002"))
    back = await desk.give_back_held(paid)
    assert back.state is Outcome.REVERSED
    assert [c[0] for c in provider.calls] == [Step.PAY, Step.REVERSE]


async def test_what_cannot_be_paid_is_refused_before_anything_is_journaled(journal: TransactionJournal) -> None:
    desk = desk_with(journal, ScriptedProvider())
    with pytest.raises(PaymentCodeError):
        await desk.begin("B1", 100, "12345", None, "pay-00000001")
    with pytest.raises(PaymentUnavailableError, match="Alipay"):
        await desk.begin("B1", 100, "281234567890123456", None, "pay-00000001")
    with pytest.raises(ConflictError, match="nothing is left"):
        await desk.begin("B1", 0, WECHAT_CODE, None, "pay-00000001")
    with pytest.raises(ConflictError, match="between"):
        await desk.begin("B1", 100, WECHAT_CODE, 101, "pay-00000001")
    assert await desk.earlier("B1", "pay-00000001") is None


async def test_asking_how_a_payment_ended_after_its_flow_finished_gives_the_outcome_not_the_intent(
    journal: TransactionJournal,
) -> None:
    """Under load the flow can end before the caller asks (seen in the parallel run): the journal answers."""
    desk = desk_with(journal, ScriptedProvider(), EventHub())
    begun = await desk.begin("B1", 5_000, WECHAT_CODE, None, "pay-00000002")
    await desk.wait_idle()  # the flow has ended and is no longer running
    assert (await desk.outcome(begun)).state is Outcome.PAID
