"""The cashier's corrections (#20): a line removed, a quantity changed, the member or a coupon taken off, each an
event, while no payment is held; once one is, refused with the reason; a removed line's id never comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import LedgerHandle, gateway_config, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]


TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 800}
CAKE = {"sku": "6909876543212", "name": "Cake", "category": "bakery", "unit_price": 25_000}


async def test_a_basket_is_corrected_until_a_payment_is_taken(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        await pos.connect_events()
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        await pos.add_line(basket, **TART)
        await pos.add_line(basket, **CAKE)
        view = await pos.call("PATCH", f"/v1/baskets/{basket}/lines/1", {"quantity": 6})
        assert [(x["line_id"], x["quantity"]) for x in view["lines"]] == [(1, 6), (2, 1)]
        view = await pos.call("DELETE", f"/v1/baskets/{basket}/lines/2")
        assert [x["line_id"] for x in view["lines"]] == [1]
        view = await pos.add_line(basket, **CAKE)
        assert [x["line_id"] for x in view["lines"]] == [1, 3]  # line 2 is never given again
        assert (await pos.refusal("DELETE", f"/v1/baskets/{basket}/lines/2"))[0] == 404
        corrected: list[str] = []
        while len(corrected) < 2:
            event = await pos.next_event("basket")
            if "corrected" in event:
                corrected.append(event["corrected"])
        assert corrected == ["line 1 quantity 6", "line 2"]
        view = await pos.call("DELETE", f"/v1/baskets/{basket}/member")
        assert (view["member"], view["total_discount"]) == (None, 0)  # the member price went with them
        assert (await pos.refusal("DELETE", f"/v1/baskets/{basket}/member"))[0] == 409
        assert (await pos.refusal("DELETE", f"/v1/baskets/{basket}/coupons/C-20-OFF-200"))[0] == 404
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        paid = await pos.pay(basket, await ledger.wallet_code("M0001"), amount=1_000)
        assert paid["payment"]["state"] == "paid"
        status, why = await pos.refusal("PATCH", f"/v1/baskets/{basket}/lines/1", {"quantity": 1})
        assert (status, "a payment was taken for this basket" in why) == (409, True)
        assert (await pos.refusal("DELETE", f"/v1/baskets/{basket}/member"))[0] == 409
        record = (await pos.complete(basket, cash=30_000))["record"]
        assert [x["quantity"] for x in record["lines"]] == [6, 1]
        status, why = await pos.refusal("DELETE", f"/v1/baskets/{basket}/lines/1")
        assert (status, "completed" in why) == (409, True)
