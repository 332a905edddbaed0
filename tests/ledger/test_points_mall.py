"""The points mall (Mallcoo's 积分商城) at the ledger: a catalogue an operator keeps, orders from the member app
that hold the points and the stock, a service desk till that hands an order over (the member shows their code)
and takes the points, and a cancellation that takes nothing and puts the item back."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.harness import LedgerHandle, TestTerminal, ledger_cli

pytestmark = [pytest.mark.ledger]


def cli(ledger: LedgerHandle, *args: str) -> str:
    done = ledger_cli(*args, *ledger.store_args())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def app(ledger: LedgerHandle, method: str, path: str, body: object = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ledger.tokens['app']}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(method, ledger.url + path, json=body) as r:
        return r.status, await r.json(content_type=None)


@pytest.fixture
async def desk(ledger: LedgerHandle) -> TestTerminal:
    return await ledger.terminal("T-DESK", store="S-1", merchant="M-SERVICE")


async def test_an_order_holds_then_takes_its_points_and_a_cancellation_takes_nothing(
    ledger: LedgerHandle, desk: TestTerminal
) -> None:
    assert "MUG: Mall mug, 50 points, 2 in stock" in cli(
        ledger, "catalogue", "add", "MUG", "--name", "Mall mug", "--points", "50", "--stock", "2"
    )
    cli(ledger, "member", "adjust", "M0001", "--points", "120", "--reason", "points to spend in the mall")
    status, offered = await app(ledger, "GET", "/v1/catalogue")
    assert (status, [i["item_id"] for i in offered["items"]]) == (200, ["MUG"])
    status, first = await app(ledger, "POST", "/v1/members/M0001/orders", {"item_id": "MUG"})
    assert (status, first["state"], first["points"]) == (201, "placed", 50)
    status, too_many = await app(ledger, "POST", "/v1/members/M0001/orders", {"item_id": "MUG", "quantity": 2})
    assert (status, too_many["title"]) == (409, "out-of-stock")
    status, second = await app(ledger, "POST", "/v1/members/M0001/orders", {"item_id": "MUG"})
    assert status == 201
    # Held, not taken: the balance stands, but a till can no longer hold what the orders hold.
    assert await ledger.points("M0001") == 120
    txn = "01a23718-0000-7000-8000-000000000000"
    status, short = await desk.call("POST", "/v1/reservations", {"member_id": "M0001", "points": 50, "txn_id": txn})
    assert (status, short["title"]) == (409, "insufficient-points")  # 120 − 100 held = 20 to spend
    status, cancelled = await app(ledger, "POST", f"/v1/members/M0001/orders/{second['order_id']}/cancel")
    assert (status, cancelled["state"]) == (200, "cancelled")
    assert "1 in stock  Mall mug" in cli(ledger, "catalogue", "list")
    # At the service desk: the member shows their own code; the points are taken.
    code = await ledger.member_qr("M0001")
    status, handed = await desk.call(
        "POST", f"/v1/orders/{first['order_id']}/fulfil", {"member_id": "M0001", "code": code}
    )
    assert (status, handed["state"], handed["terminal_id"]) == (200, "fulfilled", "T-DESK"), handed
    assert await ledger.points("M0001") == 70
    status, again = await desk.call(
        "POST", f"/v1/orders/{first['order_id']}/fulfil", {"member_id": "M0001", "code": code}
    )
    assert (status, again["title"]) == (409, "order-closed")
    other = await ledger.member_qr("M0002")
    status, stranger = await desk.call(
        "POST", f"/v1/orders/{first['order_id']}/fulfil", {"member_id": "M0002", "code": other}
    )
    assert (status, stranger["title"]) == (404, "unknown-order")
    status, forged = await desk.call(
        "POST", f"/v1/orders/{first['order_id']}/fulfil", {"member_id": "M0001", "code": other}
    )
    assert (status, forged["title"]) == (422, "member-code-refused")  # a till cannot take anyone's points alone
    books = json.loads(cli(ledger, "report", "points", "--json"))
    assert (books["exchanged"], books["adjusted"]) == (50, 120)
    assert "books hold" in cli(ledger, "check")
    listed = json.loads(cli(ledger, "orders", "list", "M0001", "--json"))
    assert [o["state"] for o in listed] == ["fulfilled", "cancelled"]
    closed = ledger_cli("orders", "cancel", first["order_id"], "--reason", "too late", *ledger.store_args())
    assert closed.returncode == 65
    assert "fulfilled already" in closed.stderr


async def test_an_operator_cancels_an_order_and_withdraws_an_item(ledger: LedgerHandle) -> None:
    cli(ledger, "catalogue", "add", "BAG", "--name", "Tote bag", "--points", "10", "--stock", "1")
    cli(ledger, "member", "adjust", "M0002", "--points", "10", "--reason", "test")
    status, order = await app(ledger, "POST", "/v1/members/M0002/orders", {"item_id": "BAG"})
    assert status == 201
    assert "10 points no longer held" in cli(ledger, "orders", "cancel", order["order_id"], "--reason", "damaged")
    assert "withdrawn" in cli(ledger, "catalogue", "stock", "BAG", "--withdraw")
    status, offered = await app(ledger, "GET", "/v1/catalogue")
    assert offered["items"] == []
    status, refused = await app(ledger, "POST", "/v1/members/M0002/orders", {"item_id": "BAG"})
    assert (status, refused["title"]) == (409, "out-of-stock")
    assert "order-cancelled" in cli(ledger, "audit")


async def test_one_code_hands_over_one_order(ledger: LedgerHandle, desk: TestTerminal) -> None:
    """A till that once saw a member's code cannot collect the member's other orders with it."""
    cli(ledger, "catalogue", "add", "PEN", "--name", "Pen", "--points", "5", "--stock", "3")
    cli(ledger, "member", "adjust", "M0001", "--points", "10", "--reason", "test")
    orders = [(await app(ledger, "POST", "/v1/members/M0001/orders", {"item_id": "PEN"}))[1] for _ in range(2)]
    code = await ledger.member_qr("M0001")
    first = {"member_id": "M0001", "code": code}
    assert (await desk.call("POST", f"/v1/orders/{orders[0]['order_id']}/fulfil", first))[0] == 200
    status, reused = await desk.call("POST", f"/v1/orders/{orders[1]['order_id']}/fulfil", first)
    assert (status, reused["title"]) == (409, "code-used")
    assert "already handed over an order" in reused["detail"]
    fresh = {"member_id": "M0001", "code": await ledger.member_qr("M0001")}
    assert (await desk.call("POST", f"/v1/orders/{orders[1]['order_id']}/fulfil", fresh))[0] == 200
