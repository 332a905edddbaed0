"""Routes of the local API. All of ``/v1`` needs the bearer token."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from typing import Any, TypeVar

import msgspec
import structlog
from aiohttp import WSMsgType, web
from prometheus_client import Histogram

from gateway.api import contract, receipt_routes, staff_routes, status_page
from gateway.api.browser import TICKET_SECONDS, Tickets, browser_middleware
from gateway.api.problems import Handler, problem_middleware
from gateway.api.views import answer as _json
from gateway.api.views import basket_view, payment_view
from gateway.errors import BadRequestError, ConflictError, UnauthorizedError
from gateway.ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.payments.gift_card import GiftCardProvider
from gateway.sale import gift_cards, memberships, topups
from gateway.sale.completion import CompletedSale
from gateway.services import Services
from gateway.staff.desk import Approval
from protocols.errors import GatewayError, SchemaError
from protocols.records import ID_PATTERN, Tender

M = TypeVar("M", bound=msgspec.Struct)

SERVICES = web.AppKey("services", Services)
log = structlog.get_logger("posgw.api")
TICKETS = web.AppKey("tickets", Tickets)


def _auth_middleware(token: str, tickets: Tickets) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/events" and "ticket" in request.query:  # a browser's WebSocket
            if not tickets.redeem(request.query["ticket"]):
                raise UnauthorizedError("the event stream ticket is unknown, used or expired; ask for another")
        elif request.path.startswith("/v1/") or (request.path == "/status/ws" and not _own_page(request)):
            # The status stream: the token, or the status page itself (a browser on this till's own origin).
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise UnauthorizedError("missing or wrong bearer token")
        return await handler(request)

    return auth


def _own_page(request: web.Request) -> bool:
    """A browser showing this till's own status page (its Origin is the till's own address)."""
    return request.headers.get("Origin") in (f"http://{request.host}", f"https://{request.host}")


async def _read(request: web.Request, model: type[M], what: str) -> M:
    return contract.read(await request.read(), model, what)


def _digest(body: msgspec.Struct) -> str:
    """What a request asked, as a short digest: the same key with another body is refused (422)."""
    return hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:16]


def _basket_json(svc: Services, basket_id: str, status: int = 200) -> web.Response:
    basket = svc.baskets.get(basket_id)
    bonus = topups.bonus_of(basket, svc.directory.rulebook)
    return _json(basket_view(basket, svc.pricer.price(basket), bonus), status)


async def healthz(request: web.Request) -> web.Response:
    return _json(contract.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """200 when the till can take a sale (503 otherwise), with every check and its reason."""
    ready, checks = await request.app[SERVICES].readiness()
    return _json({"ready": ready, "checks": checks}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    svc.metrics.checks(await svc.checks())
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
    # Imported on the first request: generating the schemas costs memory an idle till need not hold.
    from gateway.api.openapi import DOCUMENT

    return web.json_response(DOCUMENT)


async def asyncapi(request: web.Request) -> web.Response:
    from gateway.api.asyncapi import DOCUMENT

    return web.json_response(DOCUMENT)


async def status(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICES].status())


async def create_basket(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.building.new_basket(svc.scans.take_pending_member())
    return _basket_json(svc, basket.basket_id, 201)


async def get_basket(request: web.Request) -> web.Response:
    return _basket_json(request.app[SERVICES], request.match_info["basket_id"])


def _line_id(request: web.Request) -> int:
    text = request.match_info["line_id"]
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise BadRequestError(f"{text[:16]!r} is not a line number")
    return int(text)


async def remove_line(request: web.Request) -> web.Response:
    """Take a line off the basket (while no payment is held; after, 409 with the reason)."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    svc.building.remove_line(basket, _line_id(request))
    return _basket_json(svc, basket.basket_id)


async def change_line(request: web.Request) -> web.Response:
    """Correct a line's quantity (while no payment is held)."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.QuantityChange, "quantity")
    svc.building.change_quantity(basket, _line_id(request), body.quantity)
    return _basket_json(svc, basket.basket_id)


async def detach_member(request: web.Request) -> web.Response:
    """Take the member off the basket (the wrong customer was attached): their coupons and points go with them."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    svc.building.detach_member(basket)
    return _basket_json(svc, basket.basket_id)


async def drop_coupon(request: web.Request) -> web.Response:
    """Take a coupon off the basket: the customer keeps it (nothing was redeemed)."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    svc.building.drop_coupon(basket, request.match_info["coupon_id"][:64])
    return _basket_json(svc, basket.basket_id)


async def add_line(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    line = await _read(request, contract.NewLine, "line")
    svc.building.add_line(basket, line.sku, line.name, line.category, line.quantity, line.unit_price, line.merchant)
    return _basket_json(svc, basket.basket_id, 201)


UNBOUND_TAP_SECONDS = 120.0  # how long a tapped unbound card stays the one "bind" means


async def bind_card(request: web.Request) -> web.Response:
    """Bind a member card to the basket's member at the ledger (online only): the last unbound card tapped
    here, or a number the cashier typed (weak). Another member's card: 409 ``card-owned``, that member masked."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.CardToBind, "card")
    if basket.member is None:
        raise ConflictError("attach the member first (their code or phone number), then bind their card")
    member_id = basket.member.member.member_id
    code = body.code or basket.member.code
    if code is None:
        raise ConflictError("the member shows their member code from the app to bind a card: scan it with the card")
    if body.code is not None and svc.identification.of_token(body.code).member.member_id != member_id:
        raise ConflictError("that code is another member's: the member binds a card with their own code")
    if body.number is not None:
        identifier, weak = f"card:{body.number}", True
    else:
        tapped = svc.identification.unbound
        if tapped is None or svc.identification.clock() - tapped[1] > UNBOUND_TAP_SECONDS:
            raise ConflictError("no unbound card was tapped here in the last two minutes: tap it, or type its number")
        identifier, _, weak = tapped
    bound = await svc.client.bind_card(member_id, identifier, code)
    svc.identification.unbound = None
    svc.refresher.kick_now()  # this till's cache learns the card now, the others with the member's next revision
    log.info("card_bound", member_id=member_id, kind=identifier.split(":")[0], weak=weak, now=bound)
    answer = contract.CardBound(member_id, identifier, "now" if bound else "already", weak)
    return _json(answer, 201 if bound else 200)


async def fulfil_order(request: web.Request) -> web.Response:
    """A service desk hands over a points mall order (online only): the member shows their own code, checked
    here and by the ledger, which takes the points it held for the order."""
    svc = request.app[SERVICES]
    order_id = request.match_info["order_id"]
    if not re.fullmatch(ID_PATTERN, order_id):
        raise BadRequestError(f"{order_id[:32]!r} is not an order id")
    body = await _read(request, contract.OrderCollection, "order")
    member_id = svc.identification.of_token(body.code).member.member_id
    order = await svc.client.fulfil_order(order_id, member_id, body.code)
    svc.refresher.kick_now()  # the member's points balance here follows at once
    log.info("order_fulfilled", order_id=order_id, member_id=member_id, points=order["points"])
    return _json(msgspec.convert(order, contract.OrderHandedOver))


async def join(request: web.Request) -> web.Response:
    """Enrol a customer by phone number (开卡), online or offline: 201 with the member made for them;
    ``409 already-a-member`` when a member carries the number (attach them by phone instead)."""
    svc = request.app[SERVICES]
    body = await _read(request, contract.Joiner, "joiner")
    svc.cashiers.who()  # a cashier enrols the customer, where the till holds staff
    match = await svc.joining.join(body.phone)
    return _json(contract.Joined(match.member.member_id, match.member.tier, not svc.link.online), 201)


async def join_at_basket(request: web.Request) -> web.Response:
    """Enrol a customer by phone number and attach them to the basket: the sale in progress earns."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.Joiner, "joiner")
    basket.require_open()  # before the member is made: a closed basket makes nobody
    svc.building.attach_member(basket, await svc.joining.join(body.phone))
    return _basket_json(svc, basket.basket_id, 201)


async def attach_member(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.MemberIdentification, "member")
    if body.token is not None and body.phone is None:
        match = await svc.identification.by_token(body.token)
    elif body.phone is not None and body.token is None:
        match = await svc.identification.by_phone(body.phone)
    else:
        raise SchemaError("member", ["give exactly one of token (a member code) or phone"])
    svc.building.attach_member(basket, match)
    return _basket_json(svc, basket.basket_id)


async def topup(request: web.Request) -> web.Response:
    """Make an empty basket a top-up of stored value for its member (``gateway/sale/topups.py``)."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.TopUp, "top-up")
    topups.start(basket, svc.directory.rulebook, body.amount, svc.link)
    return _basket_json(svc, basket.basket_id, 201)


async def wallet_statement(request: web.Request) -> web.Response:
    """The basket's member's stored value at the ledger (online): they showed their code, which the ledger
    checks; a member attached by phone or card shows it first."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    if basket.member is None or basket.member.code is None:
        raise ConflictError("the member shows their code from the app to see their stored value: scan it first")
    data = await svc.client.wallet_statement(basket.member.member.member_id, basket.member.code)
    return _json(msgspec.convert(data, contract.WalletStatement))


async def buy_tier(request: web.Request) -> web.Response:
    """Make an empty basket the sale of a paid tier to its member (``gateway/sale/memberships.py``)."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.TierPurchase, "tier")
    memberships.start(basket, svc.directory.rulebook, body.tier)
    return _basket_json(svc, basket.basket_id)


async def load_gift_card(request: web.Request) -> web.Response:
    """A line loading a gift card (``gateway/sale/gift_cards.py``): sold or reloaded with the sale."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.GiftCardLoad, "gift card")
    if (body.code is None) == (body.number is None):
        raise BadRequestError("give the card's code or its number, one of the two")
    provider = svc.desk.providers["giftcard"]
    assert isinstance(provider, GiftCardProvider)
    book = svc.directory.rulebook
    await gift_cards.load(basket, book, provider, svc.client, svc.link, body.amount, body.code, body.number)
    return _basket_json(svc, basket.basket_id)


async def gift_card_balance(request: web.Request) -> web.Response:
    """A gift card's balance, state and last day, as the ledger has it (online)."""
    svc = request.app[SERVICES]
    body = await _read(request, contract.GiftCardAsked, "gift card")
    if (body.code is None) == (body.number is None):
        raise BadRequestError("give the card's code or its number, one of the two")
    provider = svc.desk.providers["giftcard"]
    assert isinstance(provider, GiftCardProvider)
    try:
        number = provider.number_of(body.code) if body.code is not None else str(body.number)
    except GatewayError as err:
        raise ConflictError(f"this is not a gift card of this mall's: {err}") from err
    return _json(msgspec.convert(await svc.client.gift_card(number), contract.GiftCardView))


async def add_coupon(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.CouponToken, "coupon")
    await svc.building.add_coupon(basket, body.token)
    return _basket_json(svc, basket.basket_id)


async def add_promo_code(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.PromoCode, "promo code")
    svc.building.add_promo_code(basket, body.code)
    return _basket_json(svc, basket.basket_id)


async def redeem_points(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    body = await _read(request, contract.PointsToSpend, "points")
    await svc.building.redeem_points(basket, body.points)
    return _basket_json(svc, basket.basket_id)


def _idempotency_key(request: web.Request, what: str) -> str:
    """The ``Idempotency-Key`` header every money-moving request needs."""
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        raise SchemaError(what, [f"Idempotency-Key: header is required on {what}"])
    if not re.fullmatch(contract.KEY_PATTERN.strip("^$"), key):
        raise SchemaError(what, [f"Idempotency-Key: {key[:40]!r} does not match {contract.KEY_PATTERN}"])
    return key


def _sale_response(sale: CompletedSale) -> web.Response:
    """201 for a new record, 200 for the same answer to a retried request."""
    body = {"replayed": sale.replayed, "record": sale.record.to_wire()}  # the record as signed
    return _json(body, 200 if sale.replayed else 201)


async def complete(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    basket_id = request.match_info["basket_id"]
    key = _idempotency_key(request, "completion")
    body = await _read(request, contract.Completion, "completion")
    tenders = [Tender(t.kind, t.amount) for t in body.tenders]
    digest = _digest(body)
    sale = await svc.completion.replay(basket_id, key, digest)
    if sale is None:
        personal = {"receipt_phone": body.receipt_phone} if body.receipt_phone else None
        sale = await svc.completion.complete(svc.baskets.get(basket_id), tenders, key, personal, digest)
    return _sale_response(sale)


async def pay(request: web.Request) -> web.Response:
    """A scanned code, or the card terminal; answers once the payment has an outcome."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    key = _idempotency_key(request, "a payment")
    body = await _read(request, contract.PaymentRequest, "payment")
    if (body.code is None) == (body.method is None):
        raise SchemaError("payment", ['give exactly one of code (a scanned payment code) or method ("card")'])
    intent, replayed = await svc.paying.pay(basket, body.code, body.amount, key)
    basket_json = basket_view(basket, svc.pricer.price(basket), topups.bonus_of(basket, svc.directory.rulebook))
    return _json(contract.PaymentTaken(payment=payment_view(intent), basket=basket_json), 200 if replayed else 201)


async def cancel_basket(request: web.Request) -> web.Response:
    """Give the basket up; any payment taken for it is given back (reversed) first."""
    svc = request.app[SERVICES]
    basket = svc.baskets.get(request.match_info["basket_id"])
    await svc.paying.cancel(basket)
    return _basket_json(svc, basket.basket_id)


async def refund(request: web.Request) -> web.Response:
    """Refund a sale made here, in full or by line (no lines: all that is left)."""
    svc = request.app[SERVICES]
    key = _idempotency_key(request, "a refund")
    body = await _read(request, contract.RefundRequest, "refund")
    wanted = None if body.lines is None else {line.line: line.quantity for line in body.lines}
    approval = _approval(body.approval)
    return _sale_response(
        await svc.refunds.refund(body.txn_id, wanted, key, digest=_digest(body), code=body.code, approval=approval)
    )


def _approval(body: contract.Approval | None) -> Approval | None:
    return None if body is None else Approval(body.staff_id, body.pin)


async def void(request: web.Request) -> web.Response:
    """Void a sale of today in full (a refund by another name, for the audit trail)."""
    svc = request.app[SERVICES]
    key = _idempotency_key(request, "a void")
    body = await _read(request, contract.VoidRequest, "void")
    approval = _approval(body.approval)
    return _sale_response(
        await svc.refunds.refund(body.txn_id, None, key, void=True, digest=_digest(body), approval=approval)
    )


async def scan(request: web.Request) -> web.Response:
    """A code typed or pasted by the cashier, routed exactly like a scan."""
    svc = request.app[SERVICES]
    body = await _read(request, contract.TypedCode, "scan")
    seen = (await svc.scans.handle("keyboard", body.data)).to_wire()
    return _json({k: v for k, v in seen.items() if k not in ("type", "at")})


async def event_ticket(request: web.Request) -> web.Response:
    """A ticket for one ``/v1/events`` WebSocket within 30 s: what a browser uses instead of the header."""
    ticket = request.app[TICKETS].issue()
    return _json(contract.EventTicket(ticket=ticket, expires_in=TICKET_SECONDS), 201)


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
    tickets = Tickets()
    app = web.Application(
        middlewares=[
            _timing_middleware(svc.metrics.api_seconds),
            browser_middleware(svc.config.api),  # outside the problems: a refusal a page may read carries CORS
            problem_middleware,
            _auth_middleware(svc.config.api.token, tickets),
        ],
        client_max_size=svc.config.api.max_body_bytes,
    )
    app[SERVICES] = svc
    app[TICKETS] = tickets
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/asyncapi.json", asyncapi)
    app.router.add_get("/status", status_page.page(svc))
    app.router.add_get("/status/ws", status_page.status_socket(svc))
    app.router.add_get("/v1/status", status)
    app.router.add_post("/v1/baskets", create_basket)
    app.router.add_get("/v1/baskets/{basket_id}", get_basket)
    app.router.add_post("/v1/baskets/{basket_id}/price", get_basket)
    app.router.add_post("/v1/baskets/{basket_id}/lines", add_line)
    app.router.add_delete("/v1/baskets/{basket_id}/lines/{line_id}", remove_line)
    app.router.add_patch("/v1/baskets/{basket_id}/lines/{line_id}", change_line)
    app.router.add_delete("/v1/baskets/{basket_id}/member", detach_member)
    app.router.add_delete("/v1/baskets/{basket_id}/coupons/{coupon_id}", drop_coupon)
    app.router.add_post("/v1/baskets/{basket_id}/member", attach_member)
    app.router.add_post("/v1/baskets/{basket_id}/card", bind_card)
    app.router.add_post("/v1/baskets/{basket_id}/join", join_at_basket)
    app.router.add_post("/v1/members", join)
    app.router.add_post("/v1/baskets/{basket_id}/topup", topup)
    app.router.add_post("/v1/baskets/{basket_id}/tier", buy_tier)
    app.router.add_post("/v1/baskets/{basket_id}/giftcards", load_gift_card)
    app.router.add_post("/v1/giftcards/balance", gift_card_balance)
    app.router.add_post("/v1/orders/{order_id}/fulfil", fulfil_order)
    app.router.add_get("/v1/baskets/{basket_id}/wallet", wallet_statement)
    app.router.add_post("/v1/baskets/{basket_id}/coupons", add_coupon)
    app.router.add_post("/v1/baskets/{basket_id}/promo-codes", add_promo_code)
    app.router.add_post("/v1/baskets/{basket_id}/points", redeem_points)
    app.router.add_post("/v1/baskets/{basket_id}/payments", pay)
    app.router.add_post("/v1/baskets/{basket_id}/cancel", cancel_basket)
    app.router.add_post("/v1/baskets/{basket_id}/complete", complete)
    app.router.add_post("/v1/scans", scan)
    app.router.add_post("/v1/refunds", refund)
    app.router.add_post("/v1/voids", void)
    app.router.add_post("/v1/events/tickets", event_ticket)
    app.router.add_get("/v1/events", events)
    staff_routes.add_routes(app, svc)
    receipt_routes.add_routes(app, svc)
    return app
