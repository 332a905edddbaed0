"""``posgw-sim acquirer``: the ``micropay-http`` plugin example's provider, JSON over HTTP.

``POST /pay``, ``/query``, ``/reverse`` with ``{"ref", "code", "amount"}``,
``/refund`` with ``{"ref", "original", "amount"}``, answered
``{"result": "success" | "failed" | "user_paying" | "not_found", "payer"?}``.
Outcomes are scripted by the code's last two digits (``simulators/wallet_books.py``;
``04`` is an HTTP 500 here). A success names the payer (``"p"`` + digits 3-10 of
the code), as the real wallets do. The books are at ``GET /books``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from simulators.wallet_books import Books, Payment, payer_of

Acquirer = Books  # the name the tests and the bench have always used

ACQUIRER = web.AppKey("acquirer", Books)


async def _body(request: web.Request) -> dict[str, Any]:
    await request.app[ACQUIRER].wait()
    data = await request.json()
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="a JSON object")
    return data


def _answer(p: Payment | None) -> web.Response:
    if p is None:
        return web.json_response({"result": "not_found"})
    result = {"paying": "user_paying", "paid": "success", "declined": "failed", "reversed": "failed"}[p.state]
    answer = {"result": result}
    if p.state == "paid":
        answer["payer"] = payer_of(p.code)  # their stable id at the wallet, not the code
    return web.json_response(answer)


async def pay(request: web.Request) -> web.StreamResponse:
    data = await _body(request)
    p = await request.app[ACQUIRER].pay(
        request, "pay", str(data["ref"]), str(data.get("code", "")), int(data.get("amount", 0))
    )
    if p is None:
        return web.Response(status=500, text="acquirer error")
    return _answer(p)


async def query(request: web.Request) -> web.Response:
    return _answer(request.app[ACQUIRER].query("query", str((await _body(request))["ref"])))


async def reverse(request: web.Request) -> web.Response:
    request.app[ACQUIRER].reverse("reverse", str((await _body(request))["ref"]))
    return web.json_response({"result": "success"})


async def refund(request: web.Request) -> web.Response:
    """Give back part of a paid payment: ``{"ref" (the refund's), "original", "amount"}``."""
    data = await _body(request)
    done = request.app[ACQUIRER].refund("refund", str(data["ref"]), str(data["original"]), int(data["amount"]))
    if done == "error":
        return web.Response(status=500, text="acquirer error")
    return web.json_response({"result": "success" if done == "done" else "failed"})


async def books(request: web.Request) -> web.Response:
    return web.json_response(request.app[ACQUIRER].books())


def build_app(acquirer: Books | None = None) -> web.Application:
    app = web.Application()
    app[ACQUIRER] = acquirer or Books()
    app.router.add_post("/pay", pay)
    app.router.add_post("/query", query)
    app.router.add_post("/reverse", reverse)
    app.router.add_post("/refund", refund)
    app.router.add_get("/books", books)
    return app
