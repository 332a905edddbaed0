"""The built-in scan-to-pay provider: the micropay calls as JSON over HTTP.

``POST {url}/pay|query|reverse`` with ``{"ref", "code", "amount"}`` (``/refund``:
``{"ref", "original", "amount"}``), answered
``{"result": "success" | "failed" | "user_paying" | "not_found", "payer"?}`` (the
acquirer simulator speaks it; ``payer`` is the customer's stable id at the
wallet, which the ledger may map to a member). A connection that cannot be made at all is
``UNREACHABLE`` (the request never left); a timeout, a reset, a 5xx or a body
that is not the protocol is ``UNKNOWN``: the money may have moved.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from drivers.payment_provider import ProviderClass
from protocols.micropay import Answer, Reply, Step
from protocols.schema import Fields

_ANSWERS = {a.value: a for a in (Answer.SUCCESS, Answer.FAILED, Answer.USER_PAYING, Answer.NOT_FOUND)}


class MicropayHttpProvider:
    def __init__(self, name: str, url: str, timeout_seconds: float = 5.0, connect_seconds: float = 2.0) -> None:
        self.name = name
        self.url = url.rstrip("/")
        # A connection not made in ``connect_seconds`` is a dead network: said at once, nothing was sent.
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=min(connect_seconds, timeout_seconds))
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_options(cls, name: str, options: Fields) -> MicropayHttpProvider:
        url = options.text("url", pattern=r"https?://[^\s]+")
        timeout = options.number("timeout", 5.0, minimum=0.1, maximum=60.0)
        connect = options.number("connect_timeout", 2.0, minimum=0.05, maximum=30.0)
        return cls(name, url, timeout, connect)

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        body: dict[str, Any] = {"ref": ref, "code": code, "amount": amount}
        if step is Step.REFUND:  # ``code`` is then the original payment's reference
            body = {"ref": ref, "original": code, "amount": amount}
        try:
            async with self._http.post(f"{self.url}/{step.value}", json=body) as resp:
                if resp.status != 200:
                    return Reply(Answer.UNKNOWN)
                data = await resp.json(content_type=None)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            return Reply(Answer.UNREACHABLE)  # no connection was made: nothing was sent
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return Reply(Answer.UNKNOWN)
        if not isinstance(data, dict):
            return Reply(Answer.UNKNOWN)
        answer = _ANSWERS.get(str(data.get("result")), Answer.UNKNOWN)
        payer = data.get("payer")
        # The payer's stable id at the wallet: the ledger may know which member it is ("pay = member").
        if answer is Answer.SUCCESS and isinstance(payer, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payer):
            return Reply(answer, {"payer": payer})
        return Reply(answer)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


# mypy checks the provider keeps the payment provider contract (drivers/payment_provider.py).
_CONTRACT: ProviderClass = MicropayHttpProvider
