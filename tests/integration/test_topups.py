"""Selling stored value at the till (充值): a member's top-up paid with WeChat Pay on its published API, the
ledger crediting it and its bonus only when it accepts the signed record; what a top-up basket refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.pos_client import ApiProblemError, PosClient
from simulators.wallet_sims import Wallets
from tests.harness import LedgerHandle, gateway_config, running_gateway, wallet_payments
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]

WECHAT_PAID = "134567890123456700"  # the WeChat Pay simulator's script 00: paid at once


async def refused(pos: PosClient, method: str, path: str, body: object = None) -> str:
    with pytest.raises(ApiProblemError) as caught:
        await pos.call(method, path, body)
    assert caught.value.status == 409, caught.value.body
    return str(caught.value.body["detail"])


async def test_a_top_up_paid_by_wechat_pay_credits_the_wallet_and_its_bonus_at_the_ledger(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets
) -> None:
    before = (await ledger.account("M0001"))["wallet"]
    assert isinstance(before, int)
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, payments=wallet_payments(wallets))
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        assert "attach the member first" in await refused(pos, "POST", f"/v1/baskets/{basket}/topup", {"amount": 1})
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        too_little = await refused(pos, "POST", f"/v1/baskets/{basket}/topup", {"amount": 50})
        assert "no top-up of ¥0.50" in too_little
        view = await pos.call("POST", f"/v1/baskets/{basket}/topup", {"amount": 500_00})
        assert (view["topup"], view["topup_bonus"], view["total_due"]) == (500_00, 50_00, 500_00)  # 充500送50
        assert view["total_discount"] == 0  # stored value is sold at face value, no member price
        assert view["points_earned"] == 0  # buying stored value earns nothing
        goods = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "quantity": 1, "unit_price": 800}
        assert "stored value only" in await refused(pos, "POST", f"/v1/baskets/{basket}/lines", goods)
        code = await ledger.wallet_code("M0001")
        with pytest.raises(ApiProblemError) as caught:
            await pos.pay(basket, code)  # stored value never buys stored value
        assert caught.value.status == 409
        assert "not with wallet" in str(caught.value.body["detail"])
        paid = await pos.pay(basket, WECHAT_PAID)
        assert paid["payment"]["state"] == "paid"
        record = (await pos.complete(basket))["record"]
        assert (record["kind"], record["bonus"], record["member_id"]) == ("topup", 50_00, "M0001")
        assert [t["kind"] for t in record["tenders"]] == ["wechat"]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await ledger.account("M0001"))["wallet"] == before + 500_00 + 50_00
        # The cashier shows the member their stored value: they showed their code, the ledger checked it.
        shown = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{shown}/member", {"token": await ledger.member_qr("M0001")})
        statement = await pos.call("GET", f"/v1/baskets/{shown}/wallet")
        assert statement["balance"] == before + 500_00 + 50_00
        assert statement["bonus"][0]["remaining"] == 50_00
        assert [(m["kind"], m["amount"]) for m in statement["history"][:2]] == [("bonus", 50_00), ("topup", 500_00)]
        by_phone = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{by_phone}/member", {"phone": "13800000001"})
        with pytest.raises(ApiProblemError) as caught:
            await pos.call("GET", f"/v1/baskets/{by_phone}/wallet")
        assert caught.value.status == 409
        assert "shows their code" in str(caught.value.body["detail"])
        # Given back: only with the member's wallet code (the stored value leaves their wallet), online.
        refund = {"txn_id": record["txn_id"]}
        with pytest.raises(ApiProblemError) as caught:
            await pos.call("POST", "/v1/refunds", refund, {"Idempotency-Key": "r-topup-1"})
        assert "wallet pay code" in str(caught.value.body["detail"])
        # The member spent ¥100 of it meanwhile (the bonus first): all that is left of their own money goes back.
        spent = (await pos.new_basket())["basket_id"]
        await pos.add_line(spent, sku="6901234567892", name="Cake", category="bakery", unit_price=100_00)
        await pos.pay(spent, await ledger.wallet_code("M0001"))
        await pos.complete(spent)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        holding = (await ledger.account("M0001"))["wallet"]
        assert isinstance(holding, int)
        code = await ledger.wallet_code("M0001")
        back = await pos.call("POST", "/v1/refunds", {**refund, "code": code}, {"Idempotency-Key": "r-topup-2"})
        given = back["record"]
        assert (given["kind"], given["refund_of"], given["total_due"]) == ("refund", record["txn_id"], 500_00)
        assert [t["kind"] for t in given["tenders"]] == ["wechat"]  # back the way it was paid
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        # Its ¥50 bonus had gone into the cake, so nothing of it is left to take back.
        assert (await ledger.account("M0001"))["wallet"] == holding - 500_00
        assert await ledger.books_problems() == []
