"""Kidswant at the till: a member buys the black-gold card, their next basket earns 1.5× at once, and the card
given back within its window takes the tier away again; through the API, with a real ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]

SHOES = {"sku": "6900000000024", "name": "Shoes", "category": "fashion", "quantity": 1, "unit_price": 40_000}


async def tier_at_till(pos: PosClient, ledger: LedgerHandle, member_id: str) -> str:
    """The member's tier as this till prices them now (a basket with them attached)."""
    basket = (await pos.new_basket())["basket_id"]
    view = await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr(member_id)})
    await pos.cancel(basket)
    return str(view["member"]["tier"])


async def wait_tier(pos: PosClient, ledger: LedgerHandle, member_id: str, tier: str) -> None:
    """Until the till prices the member at ``tier``: looked at every 0.1 s for 10 s, well inside the 60 s the
    till would wait for its next refresh were it not asked to refresh at once."""
    for _ in range(100):
        if await tier_at_till(pos, ledger, member_id) == tier:
            return
        await asyncio.sleep(0.1)
    assert await tier_at_till(pos, ledger, member_id) == tier


async def test_black_gold_bought_at_the_till_earns_one_and_a_half_at_once_and_goes_with_its_refund(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        with pytest.raises(ApiProblemError) as caught:
            await pos.call("POST", f"/v1/baskets/{basket}/tier", {"tier": "black-gold"})
        assert "attach the member first" in str(caught.value.body["detail"])
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        with pytest.raises(ApiProblemError) as caught:
            await pos.call("POST", f"/v1/baskets/{basket}/tier", {"tier": "supreme"})
        assert "the rulebook sells: black-gold (¥199.00)" in str(caught.value.body["detail"])
        view = await pos.call("POST", f"/v1/baskets/{basket}/tier", {"tier": "black-gold"})
        assert (view["membership"], view["total_due"], view["total_discount"], view["points_earned"]) == (
            "black-gold",
            19_900,
            0,
            0,
        )
        with pytest.raises(ApiProblemError) as caught:
            await pos.add_line(basket, **SHOES)
        assert "sells the black-gold tier only" in str(caught.value.body["detail"])
        card = (await pos.complete(basket, cash=20_000))["record"]
        assert [(x["sku"], x["category"], x["net"]) for x in card["lines"]] == [
            ("tier:black-gold", "paid-tier", 19_900)
        ]
        # Accepted, the ledger grants it; this till hears of it at once and prices the member at it.
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await ledger.account("M0001"))["tier"] == "black-gold"
        await wait_tier(pos, ledger, "M0001", "black-gold")
        shoes = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{shoes}/member", {"token": await ledger.member_qr("M0001")})
        priced = await pos.add_line(shoes, **SHOES)
        assert priced["points_earned"] == 6  # ¥400 at ×1.5 (classic would earn 4)
        await pos.complete(shoes, cash=40_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0  # the ledger believed the 1.5×
        # Given back within 7 days: the tier goes with it.
        await pos.call("POST", "/v1/refunds", {"txn_id": card["txn_id"]}, {"Idempotency-Key": "r-black-gold-1"})
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await ledger.account("M0001"))["tier"] == "classic"
        await wait_tier(pos, ledger, "M0001", "classic")
