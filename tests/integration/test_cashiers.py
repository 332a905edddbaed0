"""The cashier's day through the local API: sign in with a PIN from the ledger's staff list, open a shift,
sell, void with a supervisor's approval, read the X report, close with the cash counted (Z report); the
ledger believes every record and answers "who did what, on which till, in which shift" from them alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, add_staff, gateway_config, ledger_cli, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]

TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 25_00}


async def refused(pos: PosClient, method: str, path: str, body: Any = None, key: bool = False) -> tuple[int, str]:
    headers = {"Idempotency-Key": uuid.uuid4().hex} if key else None
    with pytest.raises(ApiProblemError) as caught:
        await pos.call(method, path, body, headers)
    return caught.value.status, str(caught.value.body["type"]).rpartition(":")[2]


async def staffed(pos: PosClient) -> None:
    await pos.wait_status(online_with_rules)
    for _ in range(400):  # 40 s
        if (await pos.call("GET", "/v1/cashier"))["required"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the till never took the staff list")


async def test_a_shift_from_sign_in_to_z_report_is_believed_by_the_ledger(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    add_staff(ledger, "C001", "2468")
    add_staff(ledger, "S001", "1357", role="supervisor")
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        await staffed(pos)
        assert await refused(pos, "POST", "/v1/baskets") == (403, "cashier-required")
        assert await refused(pos, "POST", "/v1/cashier", {"staff_id": "C001", "pin": "0000"}) == (403, "pin-refused")
        me = await pos.call("POST", "/v1/cashier", {"staff_id": "C001", "pin": "2468"})
        assert (me["staff_id"], me["role"], me["shift"]) == ("C001", "cashier", None)
        assert await refused(pos, "POST", "/v1/baskets") == (409, "shift-required")
        opened = await pos.call("POST", "/v1/shifts", {"float": 200_00})
        assert (opened["state"], opened["record"]["kind"], opened["record"]["cashier"]) == (
            "open",
            "shift_open",
            "C001",
        )
        assert await refused(pos, "POST", "/v1/shifts", {"float": 1}) == (409, "shift-required")  # one at a time
        shift = opened["shift"]
        sales = []
        for n in (1, 2):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, **TART, quantity=n)
            sales.append((await pos.complete_cash(basket, 100_00))["record"])
        assert [(s["cashier"], s["shift"], s["change"]) for s in sales] == [
            ("C001", shift, 75_00),
            ("C001", shift, 50_00),
        ]
        # A void needs a supervisor: none given, a cashier's PIN, then the supervisor's.
        void = {"txn_id": sales[0]["txn_id"]}
        assert await refused(pos, "POST", "/v1/voids", void, key=True) == (403, "approval-required")
        as_cashier = {**void, "approval": {"staff_id": "C001", "pin": "2468"}}
        assert await refused(pos, "POST", "/v1/voids", as_cashier, key=True) == (403, "approval-required")
        approved = {**void, "approval": {"staff_id": "S001", "pin": "1357"}}
        voided = (await pos.call("POST", "/v1/voids", approved, {"Idempotency-Key": "void-0001"}))["record"]
        assert (voided["kind"], voided["cashier"], voided["approved_by"], voided["shift"]) == (
            "void",
            "C001",
            "S001",
            shift,
        )
        # A small refund needs nobody (the policy's ¥500).
        refund = {"txn_id": sales[1]["txn_id"], "lines": [{"line": 1, "quantity": 1}]}
        refunded = (await pos.call("POST", "/v1/refunds", refund, {"Idempotency-Key": "refund-0001"}))["record"]
        assert (refunded["cashier"], refunded.get("approved_by")) == ("C001", None)
        x = await pos.call("GET", "/v1/shifts/current")
        assert x["report"]["totals"]["kinds"] == {"sale": [2, 75_00], "void": [1, 25_00], "refund": [1, 25_00]}
        assert x["report"]["totals"]["tenders"] == {"cash": 25_00}
        assert (x["expected_cash"], x["over_short"]) == (225_00, None)
        z = await pos.call("POST", "/v1/shifts/current/close", {"counted": 224_50})
        assert (z["state"], z["over_short"], z["record"]["kind"]) == ("closed", -50, "shift_close")
        assert z["report"]["totals"] == x["report"]["totals"]
        assert "over/short  -¥0.50" in z["lines"]
        assert await refused(pos, "POST", "/v1/shifts/current/close", {"counted": 0}) == (409, "shift-required")
        assert (await pos.call("GET", "/v1/cashier"))["shift"] is None
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0
        await pos.call("DELETE", "/v1/cashier")
        assert await refused(pos, "POST", "/v1/baskets") == (403, "cashier-required")
    report = json.loads(ledger_cli("staff", "report", "--json", *ledger.store_args()).stdout)
    assert report["cashiers"]["C001"] == {
        "sales": 2, "sales_due": 75_00, "refunds": 1, "refunds_due": 25_00, "voids": 1, "voids_due": 25_00,
        "by_tender": {"cash": 25_00},
    }  # fmt: skip
    assert report["cashiers"]["S001"] == {"approved": 1, "by_tender": {}}
    assert [(s["shift"], s["closed_by"], s["over_short"], s["state"]) for s in report["shifts"]] == [
        (shift, "C001", -50, "applied")
    ]


async def test_wrong_pins_lock_a_staff_id_out_and_the_till_raises_an_alert(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    add_staff(ledger, "C002", "8642")
    assert ledger_cli("staff", "policy", "--max-tries", "3", "--lockout", "60", *ledger.store_args()).returncode == 0
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        await staffed(pos)
        wrong = {"staff_id": "C002", "pin": "1111"}
        first = await pos.call_problem("POST", "/v1/cashier", wrong)
        assert "2 tries left" in first["detail"]
        await pos.call_problem("POST", "/v1/cashier", wrong)
        locked = await pos.call_problem("POST", "/v1/cashier", wrong)
        assert (locked["status"], locked["type"]) == (429, "urn:posgw:problem:pin-locked")
        # Locked even with the right PIN, until the lock-out ends.
        right = await pos.call_problem("POST", "/v1/cashier", {"staff_id": "C002", "pin": "8642"})
        assert right["status"] == 429
        # An id nobody has is refused like a wrong PIN (nothing tells the two apart).
        ghost = await pos.call_problem("POST", "/v1/cashier", {"staff_id": "NOBODY", "pin": "1111"})
        assert (ghost["status"], ghost["type"]) == (403, "urn:posgw:problem:pin-refused")


async def test_a_price_changed_by_hand_is_approved_recorded_and_believed(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    add_staff(ledger, "C003", "3579")
    add_staff(ledger, "S003", "9753", role="supervisor")
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        await staffed(pos)
        await pos.call("POST", "/v1/cashier", {"staff_id": "C003", "pin": "3579"})
        await pos.call("POST", "/v1/shifts", {"float": 0})
        basket = (await pos.new_basket())["basket_id"]
        line = (await pos.add_line(basket, **TART, quantity=2))["lines"][0]["line_id"]
        path = f"/v1/baskets/{basket}/lines/{line}/price"
        assert await refused(pos, "POST", path, {"unit_price": 20_00}) == (403, "approval-required")
        assert await refused(pos, "POST", f"/v1/baskets/{basket}/lines/99/price", {"unit_price": 1}) == (
            404,
            "not-found",
        )
        approval = {"staff_id": "S003", "pin": "9753"}
        priced = await pos.call("POST", path, {"unit_price": 20_00, "approval": approval})
        assert priced["total_due"] == 40_00
        record = (await pos.complete_cash(basket, 40_00))["record"]
        assert (record["lines"][0]["unit_price"], record["lines"][0]["list_price"]) == (20_00, 25_00)
        assert (record["cashier"], record["approved_by"]) == ("C003", "S003")
        receipt = await pos.call("GET", f"/v1/receipts/{record['txn_id']}")
        assert "  price changed from ¥25.00" in receipt["text"]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0
