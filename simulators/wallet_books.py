"""What a simulated wallet provider knows: its orders, their states, what it charged and gave back.

Shared by the simulators of each wire format (``acquirer`` for the JSON
plugin example, ``wechatpay``, ``alipay``): the format is theirs, the books
and the scripts are these. The outcome of a payment is scripted by the
payment code's last two digits, so tests and the demo choose it by the code
they scan:

| last digits | behaviour |
|---|---|
| 00 | success |
| 01 | declined: insufficient balance |
| 02 | the customer is "paying" for 3 s, then success |
| 03 | pay gets no answer (the caller times out); the payment did go through |
| 04 | a system error on pay (the JSON acquirer: HTTP 500); nothing charged |
| 05 | slow: answers after 2 s, success |
| 06 | success, but the answer to pay is lost (connection dropped) |
| 07 | the customer is "paying" until the merchant gives up (reverse) |
| 08 | declined: the payment code has expired |
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PAYING_SECONDS = 3.0


@dataclass
class Payment:
    order: str
    code: str
    amount: int
    state: str  # paying | paid | declined | reversed
    paying_until: float = 0.0
    charges: int = 0
    refunded: int = 0  # fen given back by refunds
    txn_id: str = field(default_factory=lambda: "42" + str(secrets.randbelow(10**26)).zfill(26))
    reason: str = ""  # why it was declined: "balance" | "expired"
    paid_at: float = 0.0


@dataclass
class Books:
    payments: dict[str, Payment] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    latency: float = 0.0  # seconds added before every answer: a provider across the internet
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)  # refund no -> (order, amount): one refund
    refunds_failing: bool = False  # refunds answered with a system error (a provider having a bad day)
    refunded_at: dict[str, float] = field(default_factory=dict)  # refund no -> when (for the statement)
    reversed_at: dict[str, float] = field(default_factory=dict)  # order -> when it was reversed

    def books(self) -> dict[str, Any]:
        return {
            order: {"state": p.state, "amount": p.amount, "charges": p.charges, "refunded": p.refunded}
            for order, p in self.payments.items()
        }

    def of(self, payment_id: str) -> dict[str, Any] | None:
        """The books' entry for a payment intent, whichever order number its format derived from the id."""
        books = self.books()
        entry = books.get(payment_id) or books.get(payment_id.replace("-", ""))
        return entry if isinstance(entry, dict) else None

    def settle(self, p: Payment) -> Payment:
        if p.state == "paying" and p.paying_until and time.monotonic() >= p.paying_until:
            p.state, p.charges, p.paid_at = "paid", p.charges + 1, time.time()
        return p

    async def wait(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    async def pay(self, request: web.Request, call: str, order: str, code: str, amount: int) -> Payment | None:
        """Charge ``code`` for ``order`` as its script says; ``None`` for a system error (nothing charged).

        Pay is idempotent by order number: the same order again answers how it stands."""
        self.calls.append((call, order))
        if order in self.payments:
            return self.settle(self.payments[order])
        script = code[-2:]
        if script == "04":
            return None
        p = Payment(order, code, amount, "paying")
        self.payments[order] = p
        if script in ("01", "08"):
            p.state, p.reason = "declined", "balance" if script == "01" else "expired"
        elif script == "02":
            p.paying_until = time.monotonic() + PAYING_SECONDS
        elif script == "07":
            p.paying_until = 0.0  # paying until reversed
        else:
            p.state, p.charges, p.paid_at = "paid", 1, time.time()
        if script == "03":
            await asyncio.sleep(30)  # the caller's timeout fires first; the money moved
        if script == "05":
            await asyncio.sleep(2.0)
        if script == "06" and request.transport is not None:
            request.transport.close()  # the answer is lost on the way back
        return p

    def query(self, call: str, order: str) -> Payment | None:
        self.calls.append((call, order))
        p = self.payments.get(order)
        return None if p is None else self.settle(p)

    def reverse(self, call: str, order: str) -> Payment | None:
        """Cancel an order: a charge, if any, is given back."""
        self.calls.append((call, order))
        p = self.payments.get(order)
        if p is not None and p.state != "reversed":
            p.state = "reversed"
            self.reversed_at[order] = time.time()
        return p

    def refund(self, call: str, refund_no: str, order: str, amount: int) -> str:
        """``"done"`` (now or before: one refund per number), ``"refused"`` or ``"error"`` (nothing done)."""
        self.calls.append((call, refund_no))
        if self.refunds_failing:
            return "error"
        if refund_no in self.refunds:
            return "done"
        p = self.payments.get(order)
        if p is None or p.state != "paid" or p.refunded + amount > p.amount or amount <= 0:
            return "refused"
        p.refunded += amount
        self.refunds[refund_no] = (order, amount)
        self.refunded_at[refund_no] = time.time()
        return "done"


def payer_of(code: str) -> str:
    """The simulator's payer id for a code: its digits 3-10 stand for the customer (the rest vary per code)."""
    return f"p{code[2:10]}"
