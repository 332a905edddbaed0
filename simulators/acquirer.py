"""``posgw-sim acquirer``: a scan-to-pay provider over HTTP, with scripted outcomes.

Implements the micropay calls both wallet formats use: ``POST /pay``,
``POST /query``, ``POST /reverse`` (JSON ``{"ref", "code", "amount"}``). The
outcome is scripted by the payment code's last two digits, so tests and the
demo choose it by the code they scan:

| last digits | behaviour |
|---|---|
| 00 | success |
| 01 | declined |
| 02 | the customer is "paying" for 3 s, then success |
| 03 | pay times out (no answer); the payment did go through |
| 04 | HTTP 500 on pay; the payment did not go through |
| 05 | slow: answers after 2 s, success |
| 06 | success, but the answer to pay is lost (connection dropped) |
| 07 | the customer is "paying" until the terminal gives up (reverse) |

A success names the payer (``"payer": "p" + digits 3-10 of the code``, standing
for the customer's account at the wallet), as the real wallets do.

The simulator keeps books: every payment, its state (paid, reversed,
declined, paying) and how often it was charged, at ``GET /books``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Payment:
    ref: str
    code: str
    amount: int
    state: str  # paying | paid | declined | reversed
    paying_until: float = 0.0
    charges: int = 0
    refunded: int = 0  # fen given back by refunds


@dataclass
class Acquirer:
    payments: dict[str, Payment] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    latency: float = 0.0  # seconds added before every answer: a provider across the internet
    refunds: dict[str, int] = field(default_factory=dict)  # refund ref -> amount (the same ref is one refund)
    refunds_failing: bool = False  # answer 500 to refunds (a provider having a bad day)

    def books(self) -> dict[str, Any]:
        return {
            ref: {"state": p.state, "amount": p.amount, "charges": p.charges, "refunded": p.refunded}
            for ref, p in self.payments.items()
        }

    def _settle(self, p: Payment) -> None:
        if p.state == "paying" and p.paying_until and time.monotonic() >= p.paying_until:
            p.state, p.charges = "paid", p.charges + 1


ACQUIRER = web.AppKey("acquirer", Acquirer)


async def _body(request: web.Request) -> tuple[str, str, int]:
    if (latency := request.app[ACQUIRER].latency) > 0:
        await asyncio.sleep(latency)
    data = await request.json()
    return str(data["ref"]), str(data.get("code", "")), int(data.get("amount", 0))


async def pay(request: web.Request) -> web.StreamResponse:
    acq = request.app[ACQUIRER]
    ref, code, amount = await _body(request)
    acq.calls.append(("pay", ref))
    script = code[-2:]
    if ref in acq.payments:  # a repeated pay: the provider is idempotent by ref
        p = acq.payments[ref]
        acq._settle(p)
        return web.json_response(_answer(p))
    if script == "04":
        return web.Response(status=500, text="acquirer error")
    p = Payment(ref, code, amount, "paying")
    acq.payments[ref] = p
    if script == "01":
        p.state = "declined"
    elif script == "02":
        p.paying_until = time.monotonic() + 3.0
    elif script == "07":
        p.paying_until = 0.0  # paying until reversed
    else:
        p.state, p.charges = "paid", 1
    if script == "03":
        await asyncio.sleep(30)  # the terminal's timeout fires first; the money moved
    if script == "05":
        await asyncio.sleep(2.0)
    if script == "06":
        if request.transport is not None:
            request.transport.close()  # the answer is lost on the way back
        return web.Response(status=200)
    return web.json_response(_answer(p))


def _result(p: Payment) -> str:
    return {"paying": "user_paying", "paid": "success", "declined": "failed", "reversed": "failed"}[p.state]


def _answer(p: Payment) -> dict[str, str]:
    """The provider's answer; a success names the payer (their stable id at the wallet, not the code)."""
    answer = {"result": _result(p)}
    if p.state == "paid":
        answer["payer"] = payer_of(p.code)
    return answer


def payer_of(code: str) -> str:
    """The simulator's payer id for a code: its digits 3-10 stand for the customer (the rest vary per code)."""
    return f"p{code[2:10]}"


async def query(request: web.Request) -> web.Response:
    acq = request.app[ACQUIRER]
    ref, _, _ = await _body(request)
    acq.calls.append(("query", ref))
    p = acq.payments.get(ref)
    if p is None:
        return web.json_response({"result": "not_found"})
    acq._settle(p)
    return web.json_response(_answer(p))


async def reverse(request: web.Request) -> web.Response:
    acq = request.app[ACQUIRER]
    ref, _, _ = await _body(request)
    acq.calls.append(("reverse", ref))
    p = acq.payments.get(ref)
    if p is not None:
        p.state = "reversed"  # a charge, if any, is given back
    return web.json_response({"result": "success"})


async def refund(request: web.Request) -> web.Response:
    """Give back part of a paid payment: ``{"ref" (the refund's), "original", "amount"}``."""
    acq = request.app[ACQUIRER]
    data = await request.json()
    ref, original, amount = str(data["ref"]), str(data["original"]), int(data["amount"])
    acq.calls.append(("refund", ref))
    if acq.refunds_failing:
        return web.Response(status=500, text="acquirer error")
    if ref in acq.refunds:  # the same refund again: answered, never paid out twice
        return web.json_response({"result": "success"})
    p = acq.payments.get(original)
    if p is None or p.state != "paid" or p.refunded + amount > p.amount or amount <= 0:
        return web.json_response({"result": "failed"})
    p.refunded += amount
    acq.refunds[ref] = amount
    return web.json_response({"result": "success"})


async def books(request: web.Request) -> web.Response:
    return web.json_response(request.app[ACQUIRER].books())


def build_app(acquirer: Acquirer | None = None) -> web.Application:
    app = web.Application()
    app[ACQUIRER] = acquirer or Acquirer()
    app.router.add_post("/pay", pay)
    app.router.add_post("/query", query)
    app.router.add_post("/reverse", reverse)
    app.router.add_post("/refund", refund)
    app.router.add_get("/books", books)
    return app
