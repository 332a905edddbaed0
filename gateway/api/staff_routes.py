"""Routes of the cashier's day: sign in and out, open a shift, read its X report, close it with a Z report, and
change a price by hand with a supervisor's approval."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.api import contract as c
from gateway.api import staff_contract as sc
from gateway.api.views import answer, basket_view
from gateway.errors import NotFoundError
from gateway.sale import topups
from gateway.staff.desk import Approval
from protocols.openapi_parts import JSON
from protocols.records import TransactionRecord
from protocols.shifts import ShiftReport, report_lines

if TYPE_CHECKING:
    from gateway.services import Services


def cashier_view(svc: Services) -> sc.CashierView:
    who = svc.cashiers.cashier
    return sc.CashierView(
        required=svc.cashiers.required,
        staff_id=who.staff_id if who else None,
        name=who.name if who else None,
        role=who.role if who else None,
        shift=svc.cashiers.shift,
        staff_version=svc.cashiers.roster.version,
    )


def shift_view(shift: str, report: ShiftReport, record: TransactionRecord | None) -> sc.ShiftView:
    closed = report.counted is not None
    return sc.ShiftView(
        shift=shift,
        state="closed" if closed else "open",
        opened_seq=report.opened_seq,
        report=report.to_wire(),
        expected_cash=report.expected_cash,
        over_short=report.over_short if closed else None,
        lines=report_lines(report, "Z report" if closed else "X report"),
        record=record.to_wire() if record else None,
    )


def add_routes(app: web.Application, svc: Services) -> None:
    async def get_cashier(request: web.Request) -> web.Response:
        return answer(cashier_view(svc))

    async def sign_in(request: web.Request) -> web.Response:
        body = c.read(await request.read(), sc.SignIn, "sign-in")
        await svc.cashiers.sign_in(body.staff_id, body.pin)
        return answer(cashier_view(svc))

    async def sign_out(request: web.Request) -> web.Response:
        svc.cashiers.sign_out()
        return answer(cashier_view(svc))

    async def open_shift(request: web.Request) -> web.Response:
        body = c.read(await request.read(), sc.ShiftOpening, "shift opening")
        record = await svc.shifts.open(body.float_amount)
        assert record.shift is not None
        assert record.shift_report is not None
        report = ShiftReport(record.shift_report.float_amount, record.seq)
        return answer(shift_view(record.shift, report, record), 201)

    async def x_report(request: web.Request) -> web.Response:
        report = await svc.shifts.x_report()
        assert svc.shifts.opened is not None
        assert svc.shifts.opened.shift is not None
        return answer(shift_view(svc.shifts.opened.shift, report, None))

    async def close_shift(request: web.Request) -> web.Response:
        body = c.read(await request.read(), sc.ShiftClosing, "shift closing")
        record = await svc.shifts.close(body.counted)
        assert record.shift is not None
        assert record.shift_report is not None
        return answer(shift_view(record.shift, record.shift_report, record), 201)

    async def change_price(request: web.Request) -> web.Response:
        basket = svc.baskets.get(request.match_info["basket_id"])
        try:
            line_id = int(request.match_info["line_id"])
        except ValueError:
            raise NotFoundError(f"basket {basket.basket_id} has no line {request.match_info['line_id'][:16]}") from None
        body = c.read(await request.read(), sc.PriceChange, "price change")
        basket.line(line_id)  # an unknown line is refused before anyone is asked to approve
        approval = None if body.approval is None else Approval(body.approval.staff_id, body.approval.pin)
        approved_by = await svc.cashiers.approve("price", 0, approval)
        svc.building.change_price(basket, line_id, body.unit_price, approved_by)
        bonus = topups.bonus_of(basket, svc.directory.rulebook)
        return answer(basket_view(basket, svc.pricer.price(basket), bonus))

    app.router.add_get("/v1/cashier", get_cashier)
    app.router.add_post("/v1/cashier", sign_in)
    app.router.add_delete("/v1/cashier", sign_out)
    app.router.add_post("/v1/shifts", open_shift)
    app.router.add_get("/v1/shifts/current", x_report)
    app.router.add_post("/v1/shifts/current/close", close_shift)
    app.router.add_post("/v1/baskets/{basket_id}/lines/{line_id}/price", change_price)


MODELS: tuple[Any, ...] = (sc.SignIn, sc.CashierView, sc.ShiftOpening, sc.ShiftClosing, sc.ShiftView, sc.PriceChange)
_BASKET = {"name": "basket_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_LINE = {
    "name": "line_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 999_999},
}


def paths(op: Any, ref: dict[Any, Any], errors: Any) -> dict[str, Any]:
    """The OpenAPI paths of these routes (``gateway/api/openapi.py`` builds the operations)."""

    def body(model: Any, description: str) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": ref[model]}}}

    refused = errors(400, 403, 409, 413, 422, 429, 503)
    return {
        "/v1/cashier": {
            "get": op("getCashier", "who is signed in", {"200": body(sc.CashierView, "the cashier, if any")}),
            "post": op(
                "signIn",
                "sign in with a staff id and PIN (403 pin-refused with the tries left; 429 pin-locked)",
                {"200": body(sc.CashierView, "signed in"), **refused},
                body=sc.SignIn,
            ),
            "delete": op("signOut", "sign out", {"200": body(sc.CashierView, "nobody signed in")}),
        },
        "/v1/shifts": {
            "post": op(
                "openShift",
                "open a shift with the drawer's float (recorded, signed, synced)",
                {"201": body(sc.ShiftView, "the shift, open"), **refused},
                body=sc.ShiftOpening,
            )
        },
        "/v1/shifts/current": {
            "get": op(
                "xReport",
                "the X report: the open shift's totals so far (nothing recorded)",
                {"200": body(sc.ShiftView, "the report"), **refused},
            )
        },
        "/v1/baskets/{basket_id}/lines/{line_id}/price": {
            "post": op(
                "changePrice",
                "change a line's unit price by hand (a supervisor approves where the till holds staff)",
                {
                    "200": {"description": "the basket, priced now", "content": {JSON: {"schema": ref[c.BasketView]}}},
                    **refused,
                    **errors(404),
                },
                body=sc.PriceChange,
                parameters=(_BASKET, _LINE),
            )
        },
        "/v1/shifts/current/close": {
            "post": op(
                "closeShift",
                "close the shift with the cash counted: the Z report, recorded (409 when no shift is open)",
                {"201": body(sc.ShiftView, "the Z report and its record"), **refused},
                body=sc.ShiftClosing,
            )
        },
    }
