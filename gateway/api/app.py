"""Routes of the local API. All of ``/v1`` needs the bearer token."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import Histogram

from gateway.api import status_page
from gateway.api.openapi import DOCUMENT as OPENAPI
from gateway.api.problems import Handler, problem_middleware
from gateway.api.views import basket_view, sale_view
from gateway.errors import BadRequestError, UnauthorizedError
from gateway.ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.payments.messages import payment_view
from gateway.sale.completion import CompletedSale
from gateway.services import Services
from protocols.records import Tender
from protocols.schema import Fields, Problems

SERVICES = web.AppKey("services", Services)
KEY_PATTERN = r"[A-Za-z0-9_.:-]{8,128}"


def _auth_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise UnauthorizedError("missing or wrong bearer token")
        return await handler(request)

    return auth


async def _body(request: web.Request, what: str) -> Fields:
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequestError(f"the {what} body is not valid JSON: {err}") from err
    return Fields(data, Problems(what))


def _finish(f: Fields) -> None:
    f.done()
    f.problems.raise_if_any()


def _basket_json(svc: Services, basket_id: str) -> dict[str, Any]:
    basket = svc.baskets.get(basket_id)
    return basket_view(basket, svc.pricer.price(basket))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the till can take a sale (503 otherwise), with every check and its reason."""
    ready, checks = await request.app[SERVICES].readiness()
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    return web.Response(body=svc.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})


def _timing_middleware(observe: Histogram) -> Any:
    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as err:
            status = err.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            observe.labels(request.method, route, str(status)).observe(time.perf_counter() - started)

    return timing


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICES].status())


async def create_basket(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.building.new_basket(svc.scans.take_pending_member())
    return web.json_response(_basket_json(svc, basket.basket_id), status=201)


async def get_basket(request: web.Request) -> web.Response:
    return web.json_response(_basket_json(request.app[SERVICES], request.match_info["basket_id"]))


async def add_line(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    f = await _body(request, "line")
    sku = f.text("sku", max_len=64, pattern=r"[\x21-\x7e]{1,64}")
    name = f.text("name", "", max_len=200)
    category = f.text("category", "general", max_len=64)
    quantity = f.integer("quantity", 1, minimum=1, maximum=100_000)
    unit_price = f.integer("unit_price", minimum=0, maximum=10**10)
    _finish(f)
    svc.building.add_line(basket, sku, name, category, quantity, unit_price)
    return web.json_response(_basket_json(svc, basket.basket_id), status=201)


async def attach_member(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    f = await _body(request, "member")
    token = f.optional_text("token", max_len=1024)
    phone = f.optional_text("phone", max_len=32, pattern=r"[0-9+ ()-]{11,32}")
    if (token is None) == (phone is None):
        f.problems.add("", "give exactly one of token (a member code) or phone")
    _finish(f)
    if token is not None:
        match = await svc.identification.by_token(token)
    else:
        assert phone is not None
        match = await svc.identification.by_phone(phone)
    svc.building.attach_member(basket, match)
    return web.json_response(_basket_json(svc, basket.basket_id))


async def add_coupon(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    f = await _body(request, "coupon")
    token = f.text("token", max_len=1024)
    _finish(f)
    await svc.building.add_coupon(basket, token)
    return web.json_response(_basket_json(svc, basket.basket_id))


async def redeem_points(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    f = await _body(request, "points")
    points = f.integer("points", minimum=0, maximum=10**9)
    _finish(f)
    await svc.building.redeem_points(basket, points)
    return web.json_response(_basket_json(svc, basket.basket_id))


def _idempotency_key(request: web.Request, f: Fields, what: str) -> str:
    """The ``Idempotency-Key`` header every money-moving request needs; problems go with the body's."""
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        f.problems.add("Idempotency-Key", f"header is required on {what}")
    else:
        Fields({"Idempotency-Key": key}, f.problems).text("Idempotency-Key", pattern=KEY_PATTERN)
    return key


def _sale_response(sale: CompletedSale) -> web.Response:
    """201 for a new record, 200 for the same answer to a retried request."""
    return web.json_response(sale_view(sale.record, sale.replayed), status=200 if sale.replayed else 201)


async def complete(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket_id = request.match_info["basket_id"]
    f = await _body(request, "completion")
    tenders = []
    for tf in f.tables("tenders", max_items=20):
        tenders.append(Tender(tf.text("kind", choices=("cash",)), tf.integer("amount", minimum=0, maximum=10**10)))
        tf.done()
    phone = f.optional_text("receipt_phone", pattern=r"1[3-9][0-9]{9}")
    key = _idempotency_key(request, f, "completion")
    _finish(f)
    sale = await svc.completion.replay(basket_id, key)
    if sale is None:
        personal = {"receipt_phone": phone} if phone else None
        sale = await svc.completion.complete(svc.baskets.get(basket_id), tenders, key, personal)
    return _sale_response(sale)


async def pay(request: web.Request) -> web.Response:
    """``{"code"}`` (scan-to-pay) or ``{"method": "card"}`` (the terminal), ``"amount"?`` (default: all that is left).

    Answers once the payment has an outcome.
    """
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    f = await _body(request, "payment")
    code = f.optional_text("code", max_len=1024, pattern=r"[\x21-\x7e]{1,1024}")  # a PW1. code is long
    method = f.optional_text("method", pattern="card")
    if (code is None) == (method is None):
        f.problems.add("", 'give exactly one of code (a scanned payment code) or method ("card")')
    amount = f.integer("amount", minimum=1, maximum=10**10) if f.has("amount") else None
    key = _idempotency_key(request, f, "a payment")
    _finish(f)
    intent, replayed = await svc.paying.pay(basket, code, amount, key)
    body = {"payment": payment_view(intent), "basket": _basket_json(svc, basket.basket_id)}
    return web.json_response(body, status=200 if replayed else 201)


async def cancel_basket(request: web.Request) -> web.Response:
    """Give the basket up; any payment taken for it is given back (reversed) first."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    await svc.paying.cancel(basket)
    return web.json_response(_basket_json(svc, basket.basket_id))


async def refund(request: web.Request) -> web.Response:
    """Refund a sale made here: ``{"txn_id", "lines"?: [{"line": n, "quantity": k}]}``; no lines = all that is left."""
    svc = request.app[SERVICES]
    f = await _body(request, "refund")
    txn_id = f.text("txn_id", pattern=r"[0-9a-f-]{36}")
    wanted: dict[int, int] | None = None
    if f.has("lines"):
        wanted = {}
        for lf in f.tables("lines", max_items=500):
            wanted[lf.integer("line", minimum=1, maximum=500)] = lf.integer("quantity", minimum=1, maximum=100_000)
            lf.done()
    key = _idempotency_key(request, f, "a refund")
    _finish(f)
    return _sale_response(await svc.refunds.refund(txn_id, wanted, key))


async def void(request: web.Request) -> web.Response:
    """Void a sale of today in full: ``{"txn_id"}`` (a refund by another name, for the audit trail)."""
    svc = request.app[SERVICES]
    f = await _body(request, "void")
    txn_id = f.text("txn_id", pattern=r"[0-9a-f-]{36}")
    key = _idempotency_key(request, f, "a void")
    _finish(f)
    return _sale_response(await svc.refunds.refund(txn_id, None, key, void=True))


async def scan(request: web.Request) -> web.Response:
    """A code typed or pasted by the cashier, routed exactly like a scan."""
    svc = request.app[SERVICES]
    f = await _body(request, "scan")
    data = f.text("data", max_len=1024, pattern=r"[\x20-\x7e]+")
    _finish(f)
    seen = (await svc.scans.handle("keyboard", data)).to_wire()
    return web.json_response({k: v for k, v in seen.items() if k not in ("type", "at")})


async def events(request: web.Request) -> web.WebSocketResponse:
    svc = request.app[SERVICES]
    svc.hub.check_room()  # refused with a problem before the upgrade, not after
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    async with svc.hub.subscribe() as queue:
        await ws.send_json({"type": "hello", **(await svc.status())})
        reader = asyncio.create_task(_until_closed(ws), name="ws-reader")
        try:
            while True:
                getter = asyncio.create_task(queue.get(), name="ws-queue")
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                event = getter.result()
                if event is None:
                    break
                await ws.send_json(event.to_wire())
        finally:
            reader.cancel()
            await ws.close()
    return ws


async def _until_closed(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


def build_app(svc: Services) -> web.Application:
    app = web.Application(
        middlewares=[
            _timing_middleware(svc.metrics.api_seconds),
            problem_middleware,
            _auth_middleware(svc.config.api.token),
        ],
        client_max_size=svc.config.api.max_body_bytes,
    )
    app[SERVICES] = svc
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/status", status_page.page(svc))
    app.router.add_get("/status/ws", status_page.status_socket(svc))
    app.router.add_get("/v1/status", status)
    app.router.add_post("/v1/baskets", create_basket)
    app.router.add_get("/v1/baskets/{basket_id}", get_basket)
    app.router.add_post("/v1/baskets/{basket_id}/price", get_basket)
    app.router.add_post("/v1/baskets/{basket_id}/lines", add_line)
    app.router.add_post("/v1/baskets/{basket_id}/member", attach_member)
    app.router.add_post("/v1/baskets/{basket_id}/coupons", add_coupon)
    app.router.add_post("/v1/baskets/{basket_id}/points", redeem_points)
    app.router.add_post("/v1/baskets/{basket_id}/payments", pay)
    app.router.add_post("/v1/baskets/{basket_id}/cancel", cancel_basket)
    app.router.add_post("/v1/baskets/{basket_id}/complete", complete)
    app.router.add_post("/v1/scans", scan)
    app.router.add_post("/v1/refunds", refund)
    app.router.add_post("/v1/voids", void)
    app.router.add_get("/v1/events", events)
    return app
