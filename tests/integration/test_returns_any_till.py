"""Returns at any till: a service desk refunds a sale another till made, online, from the ledger's copy; what
either till gives back counts against what every till gave back; offline, a return of another till's sale is
refused with the reason; and a till that gives back what was given back elsewhere is refused by the ledger."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]

TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 10_00}
CAKE = {"sku": "6909876543212", "name": "Cake", "category": "bakery", "unit_price": 200_00}


async def refund(pos: PosClient, txn_id: str, lines: list[dict[str, int]] | None = None) -> dict[str, Any]:
    body: dict[str, object] = {"txn_id": txn_id} if lines is None else {"txn_id": txn_id, "lines": lines}
    return (await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": uuid.uuid4().hex}))["record"]  # type: ignore[no-any-return]


async def test_a_sale_is_returned_at_another_till_and_every_till_counts_what_was_given_back(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    points_before = await ledger.points("M0001")
    till_a = gateway_config(tmp_path / "a", ledger.url, tokens, terminal_id="T-A")
    desk = gateway_config(tmp_path / "desk", ledger.url, tokens, terminal_id="T-DESK")
    async with running_gateway(till_a) as (_a, pos_a), running_gateway(desk) as (_d, pos_d):
        await pos_a.wait_status(online_with_rules)
        await pos_d.wait_status(online_with_rules)
        basket = (await pos_a.new_basket())["basket_id"]
        await pos_a.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        await pos_a.add_line(basket, **TART, quantity=3)
        await pos_a.add_line(basket, **CAKE)
        sale = (await pos_a.complete_cash(basket, 300_00))["record"]
        await pos_a.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.points("M0001") == points_before + sale["points_earned"]
        # At the service desk: two tarts back, from the receipt's return code.
        given = await refund(pos_d, sale["txn_id"], [{"line": 1, "quantity": 2}])
        assert (given["terminal_id"], given["sale_terminal"], given["refund_of"]) == ("T-DESK", "T-A", sale["txn_id"])
        assert given["total_due"] == 2 * sale["lines"][0]["net"] // 3
        await pos_d.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos_d.status())["journal"]["quarantined"] == 0
        # Back at the till that sold them: "everything left" is one tart and the cake, not three tarts.
        rest = await refund(pos_a, sale["txn_id"])
        assert [(x["refund_line"], x["quantity"]) for x in rest["lines"]] == [(1, 1), (2, 1)]
        await pos_a.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos_a.status())["journal"]["quarantined"] == 0
        assert given["total_due"] + rest["total_due"] == sale["total_due"]
        assert await ledger.points("M0001") == points_before  # every point the sale earned taken back, once
        # Nothing is left: a third return, at either till, is refused.
        for pos in (pos_a, pos_d):
            with pytest.raises(ApiProblemError) as caught:
                await refund(pos, sale["txn_id"])
            assert caught.value.status == 409


async def test_offline_another_tills_sale_is_refused_and_a_double_return_is_refused_by_the_ledger(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    till_a = gateway_config(tmp_path / "a", ledger.url, tokens, terminal_id="T-A")
    desk = gateway_config(tmp_path / "desk", ledger.url, tokens, terminal_id="T-DESK")
    async with running_gateway(till_a) as (_a, pos_a), running_gateway(desk) as (_d, pos_d):
        await pos_a.wait_status(online_with_rules)
        await pos_d.wait_status(online_with_rules)
        basket = (await pos_a.new_basket())["basket_id"]
        await pos_a.add_line(basket, **CAKE)
        sale = (await pos_a.complete_cash(basket, 200_00))["record"]
        await pos_a.wait_status(lambda s: s["journal"]["pending"] == 0)
        unknown = await pos_d.call_problem(
            "POST", "/v1/refunds", {"txn_id": str(uuid.uuid4())}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert unknown["status"] == 404
        assert "the ledger says" in unknown["detail"]
        await refund(pos_d, sale["txn_id"])  # the desk gives the cake back
        await pos_d.wait_status(lambda s: s["journal"]["pending"] == 0)
        ledger.stop()
        await pos_d.wait_status(lambda s: not s["ledger"]["online"])
        await pos_a.wait_status(lambda s: not s["ledger"]["online"])
        other = (await pos_a.new_basket())["basket_id"]
        await pos_a.add_line(other, **TART)
        second = (await pos_a.complete_cash(other, 10_00))["record"]
        offline = await pos_d.call_problem(
            "POST", "/v1/refunds", {"txn_id": second["txn_id"]}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert offline["status"] == 409
        assert "needs the ledger" in offline["detail"]
        # Till A, offline, cannot know the desk gave the cake back: it gives it back again. The ledger refuses it.
        again = await refund(pos_a, sale["txn_id"])
        assert again["total_due"] == sale["total_due"]
        await ledger.start()
        status = await pos_a.wait_status(lambda s: s["journal"]["pending"] == 0, within=60)
        assert status["journal"]["quarantined"] == 1
