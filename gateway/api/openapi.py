"""The local API described as OpenAPI 3.1, served at ``GET /openapi.json``.

Built from a few helpers so that it stays short and in step with the
handlers' checks; ``tests/integration/test_openapi.py`` holds the code to it
(every route documented, every documented route served) and runs
schemathesis against a live daemon.
"""

from __future__ import annotations

from typing import Any

from protocols.openapi_parts import JSON, errors, ok
from protocols.version import VERSION

KEY_PATTERN = "^[A-Za-z0-9_.:-]{8,128}$"

_object = {"type": "object"}
_basket_id = {"name": "basket_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_key = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "pattern": KEY_PATTERN},
}


def _body(properties: dict[str, Any], required: list[str], one_of: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if one_of:  # exactly one of these keys
        schema["oneOf"] = [{"required": [k]} for k in one_of]
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    secured: dict[str, Any] = {"security": [{"bearer": []}]}
    return {"summary": summary, **secured, "responses": responses, **extra}


_common = errors(400, 401, 404, 409, 413, 422, 503)
_money = {"type": "integer", "minimum": 0, "maximum": 10**10}
_tenders = {
    "type": "array",
    "maxItems": 20,
    "items": {
        "type": "object",
        "properties": {"kind": {"const": "cash"}, "amount": _money},
        "required": ["kind", "amount"],
        "additionalProperties": False,
    },
}
_txn = {"type": "string", "pattern": "^[0-9a-f-]{36}$"}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "posgw local API", "version": VERSION, "description": "See docs/api.md."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/healthz": {"get": {"summary": "alive", "responses": ok()}},
        "/readyz": {"get": {"summary": "ready for a sale?", "responses": {**ok(), **ok(503, "not ready")}}},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/status": {
            "get": {
                "summary": "the status page",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
            }
        },
        "/v1/status": {"get": _op("the daemon's status", {**ok(), **errors(401)})},
        "/v1/baskets": {"post": _op("start a basket", {**ok(201), **errors(401, 409, 503)})},
        "/v1/baskets/{basket_id}": {
            "get": _op("a basket, priced now", {**ok(), **errors(401, 404)}, parameters=[_basket_id])
        },
        "/v1/baskets/{basket_id}/price": {
            "post": _op("a basket, priced now", {**ok(), **errors(401, 404)}, parameters=[_basket_id])
        },
        "/v1/baskets/{basket_id}/lines": {
            "post": _op(
                "add a line",
                {**ok(201), **_common},
                parameters=[_basket_id],
                requestBody=_body(
                    {
                        "sku": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,64}$"},
                        "name": {"type": "string", "maxLength": 200},
                        "category": {"type": "string", "maxLength": 64},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 100_000},
                        "unit_price": _money,
                    },
                    ["sku", "unit_price"],
                ),
            )
        },
        "/v1/baskets/{basket_id}/member": {
            "post": _op(
                "identify the member (a member code or a phone number)",
                {**ok(), **_common},
                parameters=[_basket_id],
                requestBody=_body(
                    {
                        "token": {"type": "string", "minLength": 1, "maxLength": 1024},
                        # A mainland mobile number, spaces, dashes, brackets and +86 allowed (protocols/phone.py).
                        "phone": {
                            "type": "string",
                            "pattern": "^[ ()-]*(\\+86|0086)?[ ()-]*1[ ()-]*[3-9]([ ()-]*[0-9]){9}[ ()-]*$",
                            "maxLength": 32,
                        },
                    },
                    [],
                    one_of=("token", "phone"),
                ),
            )
        },
        "/v1/baskets/{basket_id}/coupons": {
            "post": _op(
                "hold a coupon",
                {**ok(), **_common},
                parameters=[_basket_id],
                requestBody=_body({"token": {"type": "string", "minLength": 1, "maxLength": 1024}}, ["token"]),
            )
        },
        "/v1/baskets/{basket_id}/points": {
            "post": _op(
                "spend points",
                {**ok(), **_common},
                parameters=[_basket_id],
                requestBody=_body({"points": {"type": "integer", "minimum": 0, "maximum": 10**9}}, ["points"]),
            )
        },
        "/v1/baskets/{basket_id}/payments": {
            "post": _op(
                "take a payment (a scanned code, or the card terminal)",
                {**ok(201), **ok(200, "the same payment again"), **_common},
                parameters=[_basket_id, _key],
                requestBody=_body(
                    {
                        "code": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,1024}$"},
                        "method": {"const": "card"},
                        "amount": {"type": "integer", "minimum": 1, "maximum": 10**10},
                    },
                    [],
                    one_of=("code", "method"),
                ),
            )
        },
        "/v1/baskets/{basket_id}/cancel": {
            "post": _op("give the basket up, payments given back", {**ok(), **_common}, parameters=[_basket_id])
        },
        "/v1/baskets/{basket_id}/complete": {
            "post": _op(
                "complete the sale",
                {**ok(201), **ok(200, "the same sale again"), **_common, **errors(507)},
                parameters=[_basket_id, _key],
                requestBody=_body(
                    {"tenders": _tenders, "receipt_phone": {"type": "string", "pattern": "^1[3-9][0-9]{9}$"}}, []
                ),
            )
        },
        "/v1/scans": {
            "post": _op(
                "a code typed by the cashier, routed like a scan",
                {**ok(), **_common},
                requestBody=_body({"data": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,1024}$"}}, ["data"]),
            )
        },
        "/v1/refunds": {
            "post": _op(
                "refund a sale, in full or by line",
                {**ok(201), **ok(200, "the same refund again"), **_common, **errors(507)},
                parameters=[_key],
                requestBody=_body(
                    {
                        "txn_id": _txn,
                        "lines": {
                            "type": "array",
                            "maxItems": 500,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "line": {"type": "integer", "minimum": 1, "maximum": 500},
                                    "quantity": {"type": "integer", "minimum": 1, "maximum": 100_000},
                                },
                                "required": ["line", "quantity"],
                                "additionalProperties": False,
                            },
                        },
                    },
                    ["txn_id"],
                ),
            )
        },
        "/v1/voids": {
            "post": _op(
                "void a sale of today",
                {**ok(201), **ok(200, "the same void again"), **_common, **errors(507)},
                parameters=[_key],
                requestBody=_body({"txn_id": _txn}, ["txn_id"]),
            )
        },
    },
}

# WebSockets are outside OpenAPI; these routes are documented in docs/api.md instead.
NOT_DESCRIBED = ("/v1/events", "/status/ws", "/openapi.json")
