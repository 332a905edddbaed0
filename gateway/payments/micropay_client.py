"""Drive one scan-to-pay payment through the micropay state machine against a provider over HTTP.

Every provider answer that is not an explicit success or refusal (a timeout,
a connection reset, a 5xx, a body that is not the protocol) is *unknown* to
the state machine, which then queries, and in the end reverses. Each step is
reported through ``report`` so the cashier sees it as it happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from protocols.micropay import Answer, MicropayFlow, Outcome, Step

_ANSWERS = {a.value: a for a in Answer}


class MicropayClient:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, http: aiohttp.ClientSession, step: str, body: dict[str, Any]) -> Answer:
        try:
            async with http.post(f"{self.base_url}/{step}", json=body, timeout=self.timeout) as resp:
                if resp.status != 200:
                    return Answer.UNKNOWN
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return Answer.UNKNOWN
        result = data.get("result") if isinstance(data, dict) else None
        return _ANSWERS.get(str(result), Answer.UNKNOWN)

    async def pay(
        self,
        ref: str,
        code: str,
        amount: int,
        *,
        deadline: float = 30.0,  # seconds before the payment is reversed
        report: Callable[[str, str], None] = lambda step, answer: None,
        flow: MicropayFlow | None = None,
    ) -> MicropayFlow:
        """Run (or, with ``flow``, resume) a payment until it is paid, declined, reversed or needs attention."""
        loop = asyncio.get_running_loop()
        flow = flow or MicropayFlow(loop.time(), deadline=deadline)
        body = {"ref": ref, "code": code, "amount": amount}
        async with aiohttp.ClientSession() as http:
            while (action := flow.next_action()).step is not Step.DONE:
                delay = action.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                answer = await self._call(http, action.step.value, body)
                now = loop.time()
                report(action.step.value, answer.value)
                if action.step is Step.PAY:
                    flow.on_pay(answer if answer is not Answer.NOT_FOUND else Answer.UNKNOWN, now)
                elif action.step is Step.QUERY:
                    flow.on_query(answer, now)
                else:
                    flow.on_reverse(answer, now)
        report("outcome", flow.outcome.value)
        return flow


__all__ = ["MicropayClient", "Outcome"]
