"""Wangfujing's gift cards at the till, through the API with a real ledger: a card sold with its code, its balance
asked, part of a sale paid with it and the rest in cash, the sale given back to the card; what a card cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.pos_client import ApiProblemError
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]


CAKE = {"sku": "6909876543212", "name": "Birthday cake", "category": "bakery", "quantity": 1, "unit_price": 30_000}


async def test_a_gift_card_sold_asked_about_paid_with_and_given_back(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    issued = ledger_cli("giftcards", "issue", "--count", "1", "--json", *ledger.store_args())
    assert issued.returncode == 0, issued.stderr
    card = json.loads(issued.stdout)
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        sold = (await pos.new_basket())["basket_id"]
        status, why = await pos.refusal("POST", f"/v1/baskets/{sold}/giftcards", {"code": card["code"], "amount": 100})
        assert (status, "a load is 5000 to 500000 fen" in why) == (409, True)
        view = await pos.call("POST", f"/v1/baskets/{sold}/giftcards", {"code": card["code"], "amount": 50_000})
        (line,) = view["lines"]
        assert (line["sku"], line["category"], line["net"], view["total_discount"]) == (
            f"giftcard:{card['number']}",
            "gift-card-load",
            50_000,
            0,
        )
        await pos.complete(sold, cash=50_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        balance = await pos.call("POST", "/v1/giftcards/balance", {"code": card["code"]})
        assert (balance["state"], balance["balance"]) == ("active", 50_000)
        # Part of a cake paid with the card (held at the ledger first), the rest in cash.
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **CAKE)
        paid = await pos.pay(basket, card["code"], amount=20_000)
        assert paid["payment"]["state"] == "paid", paid["payment"]["history"]
        record = (await pos.complete(basket, cash=10_000))["record"]
        assert [(t["kind"], t["amount"], t.get("card")) for t in record["tenders"]] == [
            ("giftcard", 20_000, card["number"]),
            ("cash", 10_000, None),
        ]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.call("POST", "/v1/giftcards/balance", {"number": card["number"]}))["balance"] == 30_000
        # Gift card value is bought with money, never with a gift card.
        again = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{again}/giftcards", {"number": card["number"], "amount": 10_000})
        with pytest.raises(ApiProblemError) as caught:
            await pos.pay(again, card["code"], amount=10_000)
        assert "loaded with money" in str(caught.value.body["detail"])
        await pos.cancel(again)
        # The cake comes back: the card's part goes back to the card.
        await pos.call("POST", "/v1/refunds", {"txn_id": record["txn_id"]}, {"Idempotency-Key": "gc-refund-1"})
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.call("POST", "/v1/giftcards/balance", {"code": card["code"]}))["balance"] == 50_000
        assert (await pos.status())["journal"]["quarantined"] == 0
    checked = ledger_cli("check", *ledger.store_args())
    assert checked.returncode == 0, checked.stdout
