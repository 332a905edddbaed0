"""Routes of receipts and the cash drawer (``gateway/devices/receipts.py``)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.api import contract as c
from gateway.api import staff_contract as sc
from gateway.api.views import answer
from gateway.staff.desk import Approval
from protocols.openapi_parts import JSON
from protocols.receipts import Receipt, render_escpos, render_html, text_lines

if TYPE_CHECKING:
    from gateway.services import Services


def receipt_view(receipt: Receipt, printed: bool) -> sc.ReceiptView:
    return sc.ReceiptView(
        txn_id=receipt.txn_id,
        return_code=receipt.return_code,
        text=text_lines(receipt),
        html=render_html(receipt),
        escpos_base64=base64.b64encode(render_escpos(receipt)).decode(),
        printed=printed,
    )


def add_routes(app: web.Application, svc: Services) -> None:
    async def get_receipt(request: web.Request) -> web.Response:
        return answer(receipt_view(await svc.receipts.receipt(request.match_info["txn_id"]), printed=False))

    async def print_receipt(request: web.Request) -> web.Response:
        return answer(receipt_view(await svc.receipts.print(request.match_info["txn_id"]), printed=True))

    async def open_drawer(request: web.Request) -> web.Response:
        body = c.read(await request.read(), sc.DrawerOpening, "drawer opening")
        approval = None if body.approval is None else Approval(body.approval.staff_id, body.approval.pin)
        record = await svc.receipts.open_drawer(approval)
        return answer(sc.DrawerOpened(record=record.to_wire()), 201)

    app.router.add_get("/v1/receipts/{txn_id}", get_receipt)
    app.router.add_post("/v1/receipts/{txn_id}/print", print_receipt)
    app.router.add_post("/v1/drawer", open_drawer)


MODELS: tuple[Any, ...] = (sc.ReceiptView, sc.DrawerOpening, sc.DrawerOpened)
_TXN = {"name": "txn_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def paths(op: Any, ref: dict[Any, Any], errors: Any) -> dict[str, Any]:
    def body(model: Any, description: str) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": ref[model]}}}

    refused = errors(400, 403, 404, 409, 413, 422, 429, 503)
    return {
        "/v1/receipts/{txn_id}": {
            "get": op(
                "getReceipt",
                "a sale's or refund's receipt: text, HTML, ESC/POS, return code",
                {"200": body(sc.ReceiptView, "the receipt"), **refused},
                parameters=(_TXN,),
            )
        },
        "/v1/receipts/{txn_id}/print": {
            "post": op(
                "printReceipt",
                "print (or print again) a receipt on the till's printer (503 printer-not-ready: out of paper, open)",
                {"200": body(sc.ReceiptView, "printed"), **refused},
                parameters=(_TXN,),
            )
        },
        "/v1/drawer": {
            "post": op(
                "openDrawer",
                "open the cash drawer without a sale: a no_sale record (a supervisor approves), then the kick",
                {"201": body(sc.DrawerOpened, "recorded and opened"), **refused},
                body=sc.DrawerOpening,
            )
        },
    }
