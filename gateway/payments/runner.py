"""Drive one payment's micropay flow against its provider, reporting every step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from drivers.payment_provider import PaymentProvider
from protocols.micropay import Answer, MicropayFlow, Step
from protocols.refund import RefundFlow


async def run_flow(
    provider: PaymentProvider,
    ref: str,
    code: str,
    amount: int,
    flow: MicropayFlow,
    report: Callable[[Step, Answer], None] = lambda step, answer: None,
) -> dict[str, str]:
    """Until the flow is paid, declined, unreachable, reversed or needs attention; return what the provider told."""
    loop = asyncio.get_running_loop()
    detail: dict[str, str] = {}
    while (action := flow.next_action()).step is not Step.DONE:
        delay = action.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        reply = await provider.call(action.step, ref, code, amount)
        answer = reply.answer
        detail.update(reply.detail)
        now = loop.time()
        report(action.step, answer)
        if reply.note:
            flow.remark(now, reply.note)
        if action.step is Step.PAY:
            flow.on_pay(answer if answer is not Answer.NOT_FOUND else Answer.UNKNOWN, now)
        elif action.step is Step.QUERY:
            flow.on_query(answer, now)
        else:
            flow.on_reverse(answer, now)
    return detail


async def run_refund(
    provider: PaymentProvider,
    ref: str,
    original: str,
    amount: int,
    flow: RefundFlow,
    report: Callable[[Step, Answer], None] = lambda step, answer: None,
) -> None:
    """Ask the provider to give ``amount`` of payment ``original`` back, as refund ``ref``, until it is clear."""
    loop = asyncio.get_running_loop()
    while (action := flow.next_action()).step is Step.REFUND:
        delay = action.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        reply = await provider.call(Step.REFUND, ref, original, amount)
        report(Step.REFUND, reply.answer)
        if reply.note:
            flow.history.append((loop.time(), reply.note))
        flow.on_refund(reply.answer, loop.time())
