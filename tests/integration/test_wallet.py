"""Paying from the member's stored-value wallet with a ``PW1.`` code: online holds, offline limits, points."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = [pytest.mark.ledger]

TARTS = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250}


def online_with_rules(s: dict[str, object]) -> bool:
    return bool(s["members_cached"]) and bool(s["ledger"]["online"])  # type: ignore[index]


async def tarts(pos: PosClient, quantity: int) -> str:
    basket: str = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, quantity=quantity, **TARTS)
    return basket


async def test_one_scan_names_the_member_and_pays_from_the_wallet_earning_double(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = await tarts(pos, 20)  # ¥850.00; M0002 (supreme) pays 90 %: ¥765.00
        paid = await pos.pay(basket, await ledger.wallet_code("M0002"))
        payment = paid["payment"]
        assert (payment["wallet"], payment["state"], payment["amount"]) == ("wallet", "paid", 76_500)
        assert paid["basket"]["member"]["member_id"] == "M0002"  # pay = member
        assert await ledger.wallet_hold(payment["payment_id"]) == "held"
        # The customer display, as soon as the wallet has paid, says what the completed sale will:
        # paying with the wallet earns ×2 (the supreme ×1.5 alone would give 11): 76500 × 2 / 10000 → 15.
        shown = await pos.call("GET", f"/v1/baskets/{basket}")
        assert shown["points_earned"] == 15
        assert "points earned  15   growth  765" in shown["breakdown"]
        assert "  wallet ¥765.00: 15 points" in shown["breakdown"]
        record = (await pos.complete(basket))["record"]
        (tender,) = record["tenders"]
        assert (tender["kind"], tender["amount"], tender["ref"]) == ("wallet", 76_500, payment["payment_id"])
        assert tender["code"].count(":") == 1  # the code's kid:nonce: it pays once, the ledger sees to it too
        assert record["points_earned"] == 15
        assert [x["points"] for x in record["lines"]] == [15]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.wallet("M0002") == 100_000 - 76_500
        assert await ledger.wallet_hold(payment["payment_id"]) == "spent"
        assert await ledger.points("M0002") == 15

        # ¥235.00 left: a second basket of ¥382.50 is refused with the reason, nothing charged.
        second = await tarts(pos, 10)
        refused = (await pos.pay(second, await ledger.wallet_code("M0002")))["payment"]
        assert refused["state"] == "declined"
        assert "¥235.00 available" in refused["message"]
        assert "nothing was charged" in refused["message"]


async def test_cancelling_releases_the_hold(tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = await tarts(pos, 2)
        payment = (await pos.pay(basket, await ledger.wallet_code("M0001")))["payment"]
        assert await ledger.wallet_hold(payment["payment_id"]) == "held"
        cancelled = await pos.cancel(basket)
        assert [p["state"] for p in cancelled["payments"]] == ["reversed"]
        assert await ledger.wallet_hold(payment["payment_id"]) == "none"
        assert await ledger.wallet("M0001") == 50_000


async def test_offline_the_risk_limits_decide_and_the_ledger_debits_on_sync(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        codes = [await ledger.wallet_code("M0002") for _ in range(3)]  # fetched while the app was online
        ledger.stop()
        await pos.wait_status(lambda s: not s["ledger"]["online"])

        # The demo mall allows ¥300 a sale offline: ¥382.50 is refused, with the limit named.
        big = await tarts(pos, 10)  # supreme pays 90 %: ¥382.50
        refused = (await pos.pay(big, codes[0]))["payment"]
        assert refused["state"] == "declined"
        assert "at most ¥300.00" in refused["message"]
        await pos.cancel(big)

        small = await tarts(pos, 6)  # ¥229.50
        paid = (await pos.pay(small, codes[1]))["payment"]
        assert paid["state"] == "paid"
        record = (await pos.complete(small))["record"]
        assert record["offline"] is True
        assert record["tenders"][0]["kind"] == "wallet"

        # ¥500 in all per till offline: ¥229.50 spent, so ¥270.50 more is the most; one fen over is refused
        # (the wallet itself still holds ¥770.50).
        more = await tarts(pos, 9)
        over = (await pos.pay(more, codes[2], amount=27_051))["payment"]
        assert over["state"] == "declined"
        assert "more from the wallet at this till" in over["message"]

        await ledger.start()
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0 and s["ledger"]["online"], within=30)
        assert await ledger.wallet("M0002") == 100_000 - record["total_due"]


async def test_a_wallet_code_scanned_pays_the_active_basket(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.connect_events()
        await pos.wait_status(online_with_rules)
        basket = await tarts(pos, 2)
        scan = await pos.call("POST", "/v1/scans", {"data": await ledger.wallet_code("M0001")})
        assert scan["member"]["member_id"] == "M0001"
        told = await pos.next_event("payment")
        while "outcome" not in told:
            told = await pos.next_event("payment")
        assert (told["basket_id"], told["wallet"], told["outcome"]) == (basket, "wallet", "paid")
        assert told["amount"] == 7_225  # classic at the bakery: 85 % of ¥85.00


async def test_a_wallet_code_pays_once_whatever_attached_the_member(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    """The failure reproduced: attached by phone first, one PW1 code paid two baskets in a row."""
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        code = await ledger.wallet_code("M0001")
        first = await tarts(pos, 1)
        await pos.call("POST", f"/v1/baskets/{first}/member", {"phone": "13800000001"})
        assert (await pos.pay(first, code))["payment"]["state"] == "paid"
        await pos.complete(first)
        second = await tarts(pos, 1)
        await pos.call("POST", f"/v1/baskets/{second}/member", {"phone": "13800000001"})
        with pytest.raises(ApiProblemError) as used:
            await pos.pay(second, code)
        assert used.value.body["type"] == "urn:posgw:problem:member-code-used"
        assert "already used" in used.value.body["detail"]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    assert await ledger.wallet("M0001") == 50_000 - 3_613  # one tart at classic 85 %, once


async def test_a_declined_payment_used_its_code_too(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        code = await ledger.wallet_code("M0001")  # ¥500.00 in the wallet
        big = await tarts(pos, 20)  # classic 85 %: ¥722.50, more than the wallet holds
        assert (await pos.pay(big, code))["payment"]["state"] == "declined"
        await pos.cancel(big)
        small = await tarts(pos, 1)
        with pytest.raises(ApiProblemError) as used:
            await pos.pay(small, code)  # shown again: refused at the till, before the ledger is asked
        assert used.value.body["type"] == "urn:posgw:problem:member-code-used"
