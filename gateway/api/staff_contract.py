"""The staff part of the local API's contract: signing in, shifts and their reports (``gateway/staff``)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.api.contract import Approval, Money, Pin, Request, Response, StaffId


class SignIn(Request):
    staff_id: StaffId
    pin: Pin


class CashierView(Response):
    """Who is signed in at the till; ``required``: whether the till holds the mall's staff (then baskets, refunds
    and joins need a cashier, and sales an open shift)."""

    required: bool
    staff_id: str | None
    name: str | None
    role: str | None
    shift: str | None
    staff_version: int


class ShiftOpening(Request):
    float_amount: Money = msgspec.field(name="float")


class ShiftClosing(Request):
    """The cash counted in the drawer at the close, in fen."""

    counted: Money


class ShiftView(Response):
    """A shift and its report: ``x`` (so far, nothing recorded) or ``z`` (the close, recorded as ``record``).
    ``report`` is the record's ``shift_report`` form; ``lines`` the report as text for the screen."""

    shift: str
    state: Literal["open", "closed"]
    opened_seq: int
    report: dict[str, Any]
    expected_cash: int
    over_short: int | None
    lines: list[str]
    record: dict[str, Any] | None = None


class ReceiptView(Response):
    """A receipt of a sale or refund of this till, from its journaled record (``protocols/receipts.py``): as text
    lines, as an HTML fragment, as ESC/POS bytes (base64) for a printer, and its return code (``RC1.…``)."""

    txn_id: str
    return_code: str
    text: list[str]
    html: str
    escpos_base64: str
    printed: bool


class DrawerOpening(Request):
    """A drawer opened without a sale: a supervisor's approval where the till holds staff."""

    approval: Approval | None = None


class DrawerOpened(Response):
    record: dict[str, Any]


class PriceChange(Request):
    """A line's unit price changed by hand; ``approval``: a supervisor's, where the till holds staff (a supervisor
    signed in approves their own)."""

    unit_price: Money
    approval: Approval | None = None
