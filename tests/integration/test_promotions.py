"""Promotions for everyone at the till, through the API, with a real ledger: a member price, a flyer's promo
code typed or scanned, the sale record naming its benefits, and the ledger believing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.pos_client import ApiProblemError
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]

GIFT_BOX = {"sku": "6901234567809", "name": "Gift box", "category": "bakery", "quantity": 2, "unit_price": 4_800}
CAKE = {"sku": "6901234567816", "name": "Cake", "category": "bakery", "quantity": 1, "unit_price": 15_000}


async def test_a_member_price_and_a_typed_promo_code_price_the_sale_and_the_ledger_believes_them(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        await pos.add_line(basket, **GIFT_BOX)
        view = await pos.add_line(basket, **CAKE)
        # Classic members pay 85 % at the bakery: ¥40.80 a gift box, but its member price is ¥39.
        assert [(x["tier_discount"], x["promotion_discount"], x["net"]) for x in view["lines"]] == [
            (0, 1_800, 7_800),
            (2_250, 0, 12_750),
        ]
        with pytest.raises(ApiProblemError) as caught:
            await pos.call("POST", f"/v1/baskets/{basket}/promo-codes", {"code": "SPRING99"})
        assert (caught.value.status, caught.value.body["type"]) == (404, "urn:posgw:problem:promo-code-unknown")
        view = await pos.call("POST", f"/v1/baskets/{basket}/promo-codes", {"code": " spring20 "})
        assert view["promo_codes"] == ["SPRING20"]
        assert [(p["promotion_id"], p["amount"]) for p in view["promotions"]] == [
            ("P-GIFTBOX-MEMBER", 1_800),
            ("P-SPRING20", 2_000),
        ]
        assert (view["total_promotion_discount"], view["total_due"]) == (3_800, 18_550)
        assert "  Spring flyer ¥20 off ¥150  -¥20.00" in view["breakdown"]
        with pytest.raises(ApiProblemError) as caught:
            await pos.call("POST", f"/v1/baskets/{basket}/promo-codes", {"code": "SPRING20"})
        assert caught.value.status == 409
        record = (await pos.complete(basket, cash=20_000))["record"]
        assert record["promo_codes"] == ["SPRING20"]
        assert record["benefits"] == [
            {"kind": "tier", "rule": "classic", "amount": 2_250},
            {"kind": "promotion", "rule": "P-GIFTBOX-MEMBER", "amount": 1_800},
            {"kind": "promotion", "rule": "P-SPRING20", "amount": 2_000},
        ]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    held = ledger_cli("quarantine", "list", "--json", *ledger.store_args())
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout) == []  # the ledger priced the promotions again and believed them


async def test_a_promo_code_scanned_from_a_flyer_lands_on_the_active_basket(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        await pos.connect_events()
        scan = await pos.call("POST", "/v1/scans", {"data": "PR1.SPRING20"})
        assert (scan["kind"], scan["data"]) == ("promo_code", "SPRING20")  # public, not a secret
        assert (await pos.next_event("coupon"))["error"]["code"] == "no-basket"
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **CAKE)
        await pos.call("POST", "/v1/scans", {"data": "PR1.SPRING20"})
        changed = await pos.next_event("basket")
        while changed.get("promotion") is None:
            changed = await pos.next_event("basket")
        assert (changed["basket_id"], changed["promotion"]) == (basket, "P-SPRING20")
        assert (await pos.basket(basket))["total_due"] == 13_000
        await pos.call("POST", "/v1/scans", {"data": "PR1.SPRING20"})  # twice: refused, said why
        refused = await pos.next_event("coupon")
        assert "given to this basket already" in refused["error"]["message"]
        await pos.call("POST", "/v1/scans", {"data": "PR1.NOSUCHCODE"})
        assert (await pos.next_event("coupon"))["error"]["code"] == "promo-code-unknown"
