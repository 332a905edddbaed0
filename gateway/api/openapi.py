"""The local API described as OpenAPI 3.1, served at ``GET /openapi.json``.

Request and response schemas are the contract's models (``gateway/api/contract.py``),
emitted as ``components.schemas`` and referenced; every operation has an
``operationId`` a client generator names its function after, and every error
is the one shared ``Problem``. ``tests/integration/test_openapi.py`` holds the
code to it (every route documented, every documented route served), runs
schemathesis against a live daemon (responses included), and drives a sale
with a client generated from it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.api import contract as c
from gateway.api import receipt_routes, staff_routes
from gateway.events import ScanSeen
from protocols.openapi_parts import JSON, PROBLEM
from protocols.version import VERSION

MODELS: tuple[Any, ...] = (
    c.Health,
    c.Readiness,
    c.Status,
    c.BasketView,
    c.PaymentTaken,
    c.Sale,
    ScanSeen,
    c.EventTicket,
    c.Problem,
    c.NewLine,
    c.MemberIdentification,
    c.CouponToken,
    c.PromoCode,
    c.QuantityChange,
    c.TierPurchase,
    c.GiftCardLoad,
    c.GiftCardAsked,
    c.GiftCardView,
    c.OrderCollection,
    c.OrderHandedOver,
    c.CardToBind,
    c.CardBound,
    c.Joiner,
    c.Joined,
    c.TopUp,
    c.WalletStatement,
    c.PointsToSpend,
    c.PaymentRequest,
    c.Completion,
    c.RefundRequest,
    c.VoidRequest,
    c.TypedCode,
    *staff_routes.MODELS,
    *receipt_routes.MODELS,
)
_REFS, SCHEMAS = msgspec.json.schema_components(MODELS, ref_template="#/components/schemas/{name}")
REF = dict(zip(MODELS, _REFS, strict=True))

_basket_id = {"name": "basket_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_line_param = {
    "name": "line_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 999_999}
}  # fmt: skip
_key = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "the same key with the same body answers the first result again; with another body, 422",
    "schema": {"type": "string", "pattern": c.KEY_PATTERN},
}


def _json(model: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": REF[model]}}}


def _errors(*statuses: int) -> dict[str, Any]:
    problem = {"description": "a problem document", "content": {PROBLEM: {"schema": REF[c.Problem]}}}
    return {str(s): problem for s in statuses}


def _op(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    body: Any = None,
    parameters: tuple[dict[str, Any], ...] = (),
    secured: bool = True,
) -> dict[str, Any]:
    # Any request: a page on a refused origin (403) or a Host that is not this till (421), gateway/api/browser.py.
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": {**responses, **_errors(403, 421)},
    }
    if secured:
        op["security"] = [{"bearer": []}]
        op["responses"] = {**op["responses"], **_errors(401)}
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": REF[body]}}}
    return op


_common = _errors(400, 404, 409, 413, 422, 503)
_basket = {"200": _json(c.BasketView, "the basket, priced now"), **_errors(404)}
_sale = {**_common, **_errors(507)}


def _text(summary: str, operation_id: str, media: str) -> dict[str, Any]:
    ok = {"200": {"description": summary, "content": {media: {"schema": {"type": "string"}}}}}
    return {"get": _op(operation_id, summary, ok, secured=False)}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "posgw local API", "version": VERSION, "description": "See docs/api.md."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
    "paths": {
        "/healthz": {"get": _op("health", "alive", {"200": _json(c.Health, "alive")}, secured=False)},
        "/readyz": {
            "get": _op(
                "readiness",
                "ready for a sale?",
                {"200": _json(c.Readiness, "ready"), "503": _json(c.Readiness, "not ready")},
                secured=False,
            )
        },
        "/metrics": _text("Prometheus metrics", "metrics", "text/plain"),
        "/status": _text("the status page", "statusPage", "text/html"),
        "/v1/status": {"get": _op("getStatus", "the daemon's status", {"200": _json(c.Status, "the status")})},
        "/v1/baskets": {
            "post": _op("createBasket", "start a basket", {"201": _json(c.BasketView, "started"), **_errors(409, 503)})
        },
        "/v1/baskets/{basket_id}": {"get": _op("getBasket", "a basket, priced now", _basket, parameters=(_basket_id,))},
        "/v1/baskets/{basket_id}/price": {
            "post": _op("priceBasket", "a basket, priced now", _basket, parameters=(_basket_id,))
        },
        "/v1/baskets/{basket_id}/lines": {
            "post": _op(
                "addLine",
                "add a line",
                {"201": _json(c.BasketView, "added"), **_common},
                body=c.NewLine,
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/lines/{line_id}": {
            "delete": _op(
                "removeLine",
                "take a line off (while no payment is held: after, 409 with the reason)",
                {**_basket, **_common},
                parameters=(_basket_id, _line_param),
            ),
            "patch": _op(
                "changeLine",
                "correct a line's quantity (while no payment is held)",
                {**_basket, **_common},
                body=c.QuantityChange,
                parameters=(_basket_id, _line_param),
            ),
        },
        "/v1/baskets/{basket_id}/coupons/{coupon_id}": {
            "delete": _op(
                "dropCoupon",
                "take a coupon off: the customer keeps it, nothing was redeemed",
                {**_basket, **_common},
                parameters=(
                    _basket_id,
                    {
                        "name": "coupon_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 64},
                    },
                ),
            )
        },
        "/v1/baskets/{basket_id}/member": {
            "post": _op(
                "identifyMember",
                "identify the member (a member code or a phone number)",
                {**_basket, **_common},
                body=c.MemberIdentification,
                parameters=(_basket_id,),
            ),
            "delete": _op(
                "detachMember",
                "take the member off (the wrong customer): their coupons and points go with them",
                {**_basket, **_common},
                parameters=(_basket_id,),
            ),
        },
        "/v1/baskets/{basket_id}/card": {
            "post": _op(
                "bindCard",
                "bind a member card to the basket's member (the last unbound card tapped, or a typed number)",
                {"201": _json(c.CardBound, "bound now"), "200": _json(c.CardBound, "already theirs"), **_common},
                body=c.CardToBind,
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/join": {
            "post": _op(
                "joinAtBasket",
                "enrol the customer by phone number (开卡) and attach them: the sale in progress earns",
                {"201": _json(c.BasketView, "joined and attached"), **_common},
                body=c.Joiner,
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/topup": {
            "post": _op(
                "topUp",
                "sell the member stored value (充值): the empty basket becomes one line of it, paid like a sale",
                {"201": _json(c.BasketView, "the top-up basket"), **_common},
                body=c.TopUp,
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/wallet": {
            "get": _op(
                "walletStatement",
                "the member's stored value at the ledger: balance, top-up bonuses left, latest movements "
                "(online; the member attached with their code)",
                {"200": _json(c.WalletStatement, "their stored value"), **_common},
                parameters=(_basket_id,),
            )
        },
        "/v1/members": {
            "post": _op(
                "join",
                "enrol a customer by phone number (开卡), online or offline (409 when a member carries the number)",
                {"201": _json(c.Joined, "the member made for them"), **_common},
                body=c.Joiner,
            )
        },
        "/v1/baskets/{basket_id}/coupons": {
            "post": _op(
                "addCoupon", "hold a coupon", {**_basket, **_common}, body=c.CouponToken, parameters=(_basket_id,)
            )
        },
        "/v1/orders/{order_id}/fulfil": {
            "post": _op(
                "fulfilOrder",
                "hand a points mall order to the member who shows their code (online; its held points are taken)",
                {"200": _json(c.OrderHandedOver, "the order, fulfilled"), **_common},
                body=c.OrderCollection,
                parameters=(
                    {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}},
                ),
            )
        },
        "/v1/baskets/{basket_id}/giftcards": {
            "post": _op(
                "loadGiftCard",
                "load a gift card on the basket (its code, or its typed number online), sold or reloaded with the sale",
                {**_basket, **_common},
                body=c.GiftCardLoad,
                parameters=(_basket_id,),
            )
        },
        "/v1/giftcards/balance": {
            "post": _op(
                "giftCardBalance",
                "a gift card's state, balance and last day at the ledger (online)",
                {"200": _json(c.GiftCardView, "the card"), **_common},
                body=c.GiftCardAsked,
            )
        },
        "/v1/baskets/{basket_id}/tier": {
            "post": _op(
                "buyTier",
                "sell the member a paid tier (an empty basket; 409 with no member or a tier not for sale)",
                {**_basket, **_common},
                body=c.TierPurchase,
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/promo-codes": {
            "post": _op(
                "addPromoCode",
                "give the basket a promo code (404 promo-code-unknown when no promotion answers to it)",
                {**_basket, **_common},
                body=c.PromoCode,
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/points": {
            "post": _op(
                "spendPoints", "spend points", {**_basket, **_common}, body=c.PointsToSpend, parameters=(_basket_id,)
            )
        },
        "/v1/baskets/{basket_id}/payments": {
            "post": _op(
                "takePayment",
                "take a payment (a scanned code, or the card terminal); answers once it has an outcome",
                {
                    "201": _json(c.PaymentTaken, "the payment's outcome"),
                    "200": _json(c.PaymentTaken, "the same payment again"),
                    **_common,
                },
                body=c.PaymentRequest,
                parameters=(_basket_id, _key),
            )
        },
        "/v1/baskets/{basket_id}/cancel": {
            "post": _op(
                "cancelBasket",
                "give the basket up, payments given back",
                {**_basket, **_common},
                parameters=(_basket_id,),
            )
        },
        "/v1/baskets/{basket_id}/complete": {
            "post": _op(
                "completeSale",
                "complete the sale",
                {"201": _json(c.Sale, "recorded"), "200": _json(c.Sale, "the same sale again"), **_sale},
                body=c.Completion,
                parameters=(_basket_id, _key),
            )
        },
        "/v1/events/tickets": {
            "post": _op(
                "createEventTicket",
                "a ticket for one /v1/events WebSocket within 30 s (for a browser, which cannot set the header)",
                {"201": _json(c.EventTicket, "the ticket")},
            )
        },
        "/v1/scans": {
            "post": _op(
                "typeCode",
                "a code typed by the cashier, routed like a scan",
                {"200": _json(ScanSeen, "what the code is"), **_common},
                body=c.TypedCode,
            )
        },
        "/v1/refunds": {
            "post": _op(
                "refundSale",
                "refund a sale, in full or by line",
                {"201": _json(c.Sale, "recorded"), "200": _json(c.Sale, "the same refund again"), **_sale},
                body=c.RefundRequest,
                parameters=(_key,),
            )
        },
        "/v1/voids": {
            "post": _op(
                "voidSale",
                "void a sale of today",
                {"201": _json(c.Sale, "recorded"), "200": _json(c.Sale, "the same void again"), **_sale},
                body=c.VoidRequest,
                parameters=(_key,),
            )
        },
        **staff_routes.paths(_op, REF, _errors),
        **receipt_routes.paths(_op, REF, _errors),
    },
}

# WebSockets are outside OpenAPI: /v1/events and /status/ws are described by AsyncAPI (/asyncapi.json).
NOT_DESCRIBED = ("/v1/events", "/status/ws", "/openapi.json", "/asyncapi.json")
