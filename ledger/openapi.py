"""The reference ledger's API as OpenAPI 3.1, served at ``GET /openapi.json``.

Three principals: terminals (each request signed with the terminal's own key,
HTTP Message Signatures, ``docs/protocols/sync.md``), the member app's backend
and operators (a bearer token each). Held to the code by
``tests/ledger/test_ledger_openapi.py`` (every route described) and
schemathesis against a live ledger process.
"""

from __future__ import annotations

from typing import Any

from protocols.enrolment import CODE_PATTERN
from protocols.openapi_parts import JSON, PROBLEM_SCHEMA, errors, ok
from protocols.version import VERSION

_ID = "^[A-Za-z0-9_.:-]{1,64}$"
_SINCE = {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1}}


def _path(name: str, pattern: str = _ID) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _op(role: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    answers = {**responses, **errors(400, 401, 403, 422, 503)}  # 503: its database did not answer; send again
    security: list[dict[str, list[str]]] = [] if role == "public" else [{role: []}]
    return {"summary": summary, "security": security, "responses": answers, **extra}


_common = errors(404, 409, 413, 422)
_points = {"type": "integer", "minimum": 1, "maximum": 10**9}
_fen = {"type": "integer", "minimum": 1, "maximum": 10**10}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "posgw reference ledger", "version": VERSION, "description": "See docs/protocols/sync.md."},
    "components": {
        "securitySchemes": {
            "terminal": {
                "type": "apiKey",
                "in": "header",
                "name": "Signature",
                "description": "RFC 9421 HTTP Message Signatures with the terminal's enrolled Ed25519 key: "
                'Signature-Input posgw=("@method" "@path" "@query" "content-digest");created;keyid;nonce;'
                'alg="ed25519", Signature and Content-Digest (RFC 9530)',
            },
            "app": {"type": "http", "scheme": "bearer", "description": "POSGW_LEDGER_APP_TOKEN"},
            "operator": {"type": "http", "scheme": "bearer", "description": "POSGW_LEDGER_OPERATOR_TOKEN"},
        },
        "schemas": {"Problem": PROBLEM_SCHEMA},
    },
    "paths": {
        "/healthz": {"get": {"summary": "alive", "responses": ok()}},
        "/readyz": {
            "get": {"summary": "ready: database and rulebook, each check named", "responses": {**ok(), **errors(503)}}
        },
        "/metrics": {
            "get": _op(
                "operator",
                "Prometheus metrics",
                {"200": {"description": "the text format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            )
        },
        "/v1/hello": {
            "get": _op("terminal", "the ledger accepts this terminal now: its id, epoch, the ledger's time", ok())
        },
        "/v1/rulebook": {"get": _op("terminal", "the signed rulebook", ok())},
        "/v1/members": {
            "get": _op(
                "terminal",
                "the signed member snapshot, or the changes after a revision",
                ok(),
                parameters=[_SINCE],
            )
        },
        "/v1/revocations": {
            "get": _op(
                "terminal",
                "the signed list of withdrawn coupon copies, or those after a version",
                ok(),
                parameters=[_SINCE],
            )
        },
        "/v1/staff": {
            "get": _op(
                "terminal", "the signed staff list: staff ids, roles, PIN hashes (scrypt), the approval policy", ok()
            )
        },
        "/v1/sales/{txn_id}": {
            "get": _op(
                "terminal",
                "a sale of any till of the mall and its refunds applied, for a return at this till (paced)",
                {**ok(), **_common, **errors(429)},
                parameters=[{"name": "txn_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
        "/v1/sync/batch": {
            "post": _op(
                "terminal",
                "a batch of signed records (≤ 200)",
                {**ok(), **_common},
                requestBody=_body(
                    {
                        "terminal_id": {"type": "string", "pattern": _ID},
                        "records": {"type": "array", "maxItems": 200, "items": {"type": "object"}},
                    },
                    ["terminal_id", "records"],
                ),
            )
        },
        "/v1/identifiers/{identifier}": {
            "get": _op(
                "terminal",
                "the member behind an identifier (paced per terminal: 429 with Retry-After)",
                {**ok(), **_common, **errors(429)},
                parameters=[_path("identifier")],
            )
        },
        "/v1/enrol": {
            "post": _op(
                "public",
                "enrol a terminal's key with a one-time code (the proof: the key's signature of the code)",
                {**ok(201), **_common},
                requestBody=_body(
                    {
                        "terminal_id": {"type": "string", "pattern": _ID},
                        "code": {"type": "string", "pattern": f"^{CODE_PATTERN}$"},
                        "public_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
                        "proof": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
                    },
                    ["terminal_id", "code", "public_key", "proof"],
                ),
            )
        },
        "/v1/terminals/{terminal_id}/transactions": {
            "get": {
                **_op("terminal", "what the ledger holds of a terminal: its own, or any for an operator", ok()),
                "security": [{"terminal": []}, {"operator": []}],
                "parameters": [_path("terminal_id")],
            }
        },
        "/v1/reservations": {
            "post": _op(
                "terminal",
                "hold points for a sale",
                {**ok(201), **_common},
                requestBody=_body(
                    {
                        "member_id": {"type": "string", "maxLength": 64},
                        "points": _points,
                        "txn_id": {"type": "string", "pattern": "^[0-9a-f-]{36}$"},
                        "terminal_id": {"type": "string", "pattern": _ID},
                    },
                    ["member_id", "points", "txn_id"],
                ),
            )
        },
        "/v1/reservations/{reservation}": {
            "delete": _op("terminal", "let a points hold go", ok(), parameters=[_path("reservation")])
        },
        "/v1/wallet/holds": {
            "post": _op(
                "terminal",
                "hold stored value for a payment",
                {**ok(201), **_common},
                requestBody=_body(
                    {
                        "member_id": {"type": "string", "maxLength": 64},
                        "amount": _fen,
                        "ref": {"type": "string", "pattern": _ID},
                        "code": {"type": "string", "maxLength": 512, "pattern": r"^PW1\.[A-Za-z0-9_.-]+$"},
                        "terminal_id": {"type": "string", "pattern": _ID},
                    },
                    ["member_id", "amount", "ref", "code"],
                ),
            )
        },
        "/v1/wallet/holds/{ref}": {
            "get": _op("terminal", "a hold's state", ok(), parameters=[_path("ref")]),
            "delete": _op("terminal", "let a stored-value hold go", ok(), parameters=[_path("ref")]),
        },
        "/v1/members/{member_id}/qr": {
            "post": _op(
                "app",
                "a fresh member code (?kind=wallet: a wallet pay code)",
                {**ok(), **_common},
                parameters=[
                    _path("member_id"),
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["member", "wallet"]}},
                ],
            )
        },
        "/v1/members/{member_id}": {
            "get": _op("app", "a member's balances", {**ok(), **_common}, parameters=[_path("member_id")])
        },
        "/v1/members/{member_id}/identifiers": {
            "post": _op(
                "app",
                "register a card, or bind a wallet account",
                {**ok(201), **_common},
                parameters=[_path("member_id")],
                requestBody=_body({"identifier": {"type": "string", "maxLength": 80}}, ["identifier"]),
            )
        },
        "/v1/cards": {
            "post": _op(
                "terminal",
                "bind an unbound member card to the member at the till, who shows their own code (another "
                "member's card: 409, masked owner; a code that does not hold: 422; used for a binding: 409)",
                {**ok(201), **ok(), **_common},
                requestBody=_body(
                    {
                        "member_id": {"type": "string", "maxLength": 64},
                        "identifier": {"type": "string", "pattern": "^(card:[0-9]{6,19}|uid:[0-9A-Fa-f]{8,20})$"},
                        "code": {"type": "string", "maxLength": 512, "pattern": "^P[MW]1\\.[A-Za-z0-9_.-]+$"},
                    },
                    ["member_id", "identifier", "code"],
                ),
            )
        },
        "/v1/wallet/statement": {
            "post": _op(
                "terminal",
                "the stored value of the member at the counter, who shows their own code: balance, top-up bonuses "
                "left and the day each lapses, the latest movements (a code that does not hold: 422)",
                {**ok(), **_common},
                requestBody=_body(
                    {
                        "member_id": {"type": "string", "maxLength": 64},
                        "code": {"type": "string", "maxLength": 512, "pattern": "^P[MW]1\\.[A-Za-z0-9_.-]+$"},
                    },
                    ["member_id", "code"],
                ),
            )
        },
        "/v1/giftcards/{number}": {
            "get": _op(
                "terminal",
                "a gift card's state, balance, what it may still pay (less live holds) and the day it ends",
                {**ok(), **_common},
                parameters=[_path("number", "^GC[0-9]{12}$")],
            )
        },
        "/v1/giftcards/holds": {
            "post": _op(
                "terminal",
                "hold what a payment takes from a gift card (a card that cannot pay: 409 card-refused)",
                {**ok(201), **_common},
                requestBody=_body(
                    {
                        "number": {"type": "string", "pattern": "^GC[0-9]{12}$"},
                        "amount": _fen,
                        "ref": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
                    },
                    ["number", "amount", "ref"],
                ),
            )
        },
        "/v1/giftcards/holds/{ref}": {
            "delete": _op("terminal", "let a gift card hold go", ok(), parameters=[_path("ref")]),
        },
        "/v1/catalogue": {
            "get": {
                **_op("app", "the points mall's items on offer (in stock, not withdrawn)", ok()),
                "security": [{"app": []}, {"terminal": []}],
            }
        },
        "/v1/members/{member_id}/orders": {
            "post": _op(
                "app",
                "order from the points mall: the points held (30 days), the item out of stock (409 out-of-stock; "
                "422 points-refused with what the member may spend)",
                {**ok(201), **_common},
                parameters=[_path("member_id")],
                requestBody=_body(
                    {
                        "item_id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                    },
                    ["item_id"],
                ),
            ),
            "get": _op("app", "a member's points mall orders", {**ok(), **_common}, parameters=[_path("member_id")]),
        },
        "/v1/members/{member_id}/orders/{order_id}/cancel": {
            "post": _op(
                "app",
                "cancel an order not yet collected: the hold voided (nothing taken), the item back in stock",
                {**ok(), **_common},
                parameters=[_path("member_id"), _path("order_id")],
            )
        },
        "/v1/orders/{order_id}/fulfil": {
            "post": _op(
                "terminal",
                "a service desk hands an order to the member, who shows their own code: the held points are taken "
                "(not theirs: 404; closed or lapsed: 409; a code that does not hold: 422)",
                {**ok(), **_common},
                parameters=[_path("order_id")],
                requestBody=_body(
                    {
                        "member_id": {"type": "string", "maxLength": 64},
                        "code": {"type": "string", "maxLength": 512, "pattern": "^P[MW]1\\.[A-Za-z0-9_.-]+$"},
                    },
                    ["member_id", "code"],
                ),
            )
        },
        "/v1/members/{member_id}/coupons": {
            "post": _op(
                "app",
                "issue a coupon to a member",
                {**ok(201), **_common},
                parameters=[_path("member_id")],
                requestBody=_body(
                    {"coupon_id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}}, ["coupon_id"]
                ),
            )
        },
        "/v1/conflicts": {"get": _op("operator", "sales with a conflict to settle", ok())},
        "/v1/quarantine": {
            "get": _op(
                "operator",
                "records the ledger could not believe, by state",
                ok(),
                parameters=[
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["held", "released", "rejected"]},
                    }
                ],
            )
        },
        "/v1/coupons/{coupon}/revoke": {
            "post": _op(
                "operator",
                "withdraw a coupon copy",
                {**ok(), **_common},
                parameters=[_path("coupon", "^[A-Za-z0-9_.-]{1,64}:[0-9a-f]{16}$")],
            )
        },
    },
}
NOT_DESCRIBED = ("/openapi.json",)
