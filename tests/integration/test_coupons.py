"""Coupons end to end: issued by the ledger, checked offline, redeemed once here, conflicts caught there."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocols.business_day import business_day
from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = pytest.mark.ledger


async def issue_coupon(ledger: LedgerHandle, member_id: str, coupon_id: str) -> str:
    token, _ = await ledger.coupon(member_id, coupon_id)
    return token


async def conflicts(ledger: LedgerHandle) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ledger.tokens['operator']}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.get(f"{ledger.url}/v1/conflicts") as r:
        body: list[dict[str, Any]] = (await r.json())["conflicts"]
        return body


async def sale_with_coupon(pos: PosClient, token: str, amount: int = 30_000) -> dict[str, Any]:
    basket = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, sku="CAKE", name="Cake", category="bakery", unit_price=amount)
    priced = await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
    assert priced["coupons"] == [{"coupon_id": "C-20-OFF-200", "name": "¥20 off ¥200 at the bakery", "applied": True}]
    result: dict[str, Any] = await pos.complete_cash(basket, priced["total_due"])
    return result


async def test_a_coupon_is_applied_redeemed_and_never_used_twice_here(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    token = await issue_coupon(ledger, "M0001", "C-20-OFF-200")
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        sale = await sale_with_coupon(pos, token)
        record = sale["record"]
        assert record["total_discount"] == 2_000
        assert len(record["coupons"]) == 1
        basket = (await pos.new_basket())["basket_id"]
        with pytest.raises(ApiProblemError) as err:
            await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
        assert (err.value.status, err.value.body["type"]) == (409, "urn:posgw:problem:coupon-redeemed")
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with pytest.raises(ApiProblemError) as err:
            await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": forged})
        assert err.value.body["type"] in ("urn:posgw:problem:token-forged", "urn:posgw:problem:token-malformed")
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    assert await conflicts(ledger) == []


async def test_the_same_coupon_at_two_offline_terminals_is_a_conflict_not_a_loss(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    token = await issue_coupon(ledger, "M0002", "C-20-OFF-200")
    first = gateway_config(tmp_path / "a", ledger.url, tokens)
    second = gateway_config(tmp_path / "b", ledger.url, tokens, terminal_id="T-TEST-02")
    async with running_gateway(first) as (_a, pos_a), running_gateway(second) as (_b, pos_b):
        await pos_a.wait_status(lambda s: bool(s["members_cached"]))
        await pos_b.wait_status(lambda s: bool(s["members_cached"]))
        ledger.stop()  # both terminals go offline
        await sale_with_coupon(pos_a, token)
        await sale_with_coupon(pos_b, token)
        await ledger.start()
        await pos_a.wait_status(lambda s: s["journal"]["pending"] == 0, within=30)
        await pos_b.wait_status(lambda s: s["journal"]["pending"] == 0, within=30)
    found = await conflicts(ledger)
    assert len(found) == 1
    assert "already redeemed" in found[0]["detail"]


async def test_a_scanned_coupon_lands_on_the_active_basket(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    token = await issue_coupon(ledger, "M0001", "C-20-OFF-200")
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        await pos.connect_events()
        scan = await pos.call("POST", "/v1/scans", {"data": token})
        assert (scan["kind"], scan["data"]) == ("coupon_token", None)
        refused = await pos.next_event("coupon")
        assert refused["error"]["code"] == "no-basket"
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", "/v1/scans", {"data": token})
        event = await pos.next_event("coupon")
        assert (event["basket_id"], event["coupon_id"]) == (basket, "C-20-OFF-200")
        priced = await pos.basket(basket)
        assert priced["coupons"][0]["applied"] is False  # the basket is still empty
        assert any("no item in the basket qualifies" in n for n in priced["notices"])


async def test_points_offset_spends_the_members_points_once(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:

    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        # Earn first: ¥1,000 at the bakery (classic 85 %) → 8 points.
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        await pos.add_line(basket, sku="BIG", category="bakery", unit_price=100_000)
        await pos.complete_cash(basket, 85_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.points("M0001") == 8
        # Refresh the member cache the way the daemon does, so it knows the 8 points.
        await gw.services.refresher.refresh_once()
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        await pos.add_line(basket, sku="SMALL", category="bakery", unit_price=1_000)
        priced = await pos.call("POST", f"/v1/baskets/{basket}/points", {"points": 8})
        assert priced["points_available"] == 8
        offset_day = business_day(datetime.now(UTC)).isoweekday() in (2, 5)  # the demo mall's offset days, its time
        if offset_day:
            assert (priced["total_offset"], priced["points_redeemed"]) == (8, 8)
        else:
            assert priced["total_offset"] == 0
            assert priced["notices"] == ["points offset is only on Tue, Fri"]
        await pos.complete_cash(basket, priced["total_due"])
        # Before the ledger has even seen that sale, this terminal counts the points as gone.
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        again = await pos.call("POST", f"/v1/baskets/{basket}/points", {"points": 8})
        assert again["points_available"] == (0 if offset_day else 8)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    assert await ledger.points("M0001") == (0 if offset_day else 8)


async def test_offline_points_spending_stays_within_the_risk_limits(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    import time

    tarts = [await issue_coupon(ledger, "M0001", "C-TART-2PTS") for _ in range(3)]
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000001"})
        await pos.add_line(basket, sku="BIG", category="bakery", unit_price=100_000)
        await pos.complete_cash(basket, 85_000)  # earns 8 points
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        await gw.services.refresher.refresh_once()
        ledger.stop()
        await pos.wait_status(lambda s: not s["ledger"]["online"])

        async def tart_sale(coupon: str) -> dict[str, Any]:
            basket = (await pos.new_basket())["basket_id"]
            await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000001"})
            await pos.add_line(basket, sku="6901234567892", name="Egg tart", category="bakery", unit_price=800)
            priced = await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": coupon})
            assert priced["points_redeemed"] == 2
            result: dict[str, Any] = await pos.complete_cash(basket, priced["total_due"])
            return result

        await tart_sale(tarts[0])
        await tart_sale(tarts[1])
        with pytest.raises(ApiProblemError) as err:
            await tart_sale(tarts[2])
        assert (err.value.status, err.value.body["type"]) == (422, "urn:posgw:problem:offline-limit")
        assert "at most 2 sales" in str(err.value.body["detail"])

        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000001"})
        gw.services.link.state.last_contact = time.time() - 25 * 3600
        with pytest.raises(ApiProblemError) as err:
            await pos.call("POST", f"/v1/baskets/{basket}/points", {"points": 1})
        assert "out of reach for over 24 h" in str(err.value.body["detail"])


async def test_a_refund_in_two_parts_gives_everything_back(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    token = await issue_coupon(ledger, "M0002", "C-20-OFF-200")
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000002"})
        await pos.add_line(basket, sku="CAKE", category="bakery", unit_price=30_000, quantity=3)
        priced = await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
        sale = (await pos.complete_cash(basket, priced["total_due"]))["record"]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        points_after_sale = await ledger.points("M0002")
        assert points_after_sale == sale["points_earned"] > 0

        async def refund(body: dict[str, object], key: str) -> dict[str, Any]:
            result: dict[str, Any] = await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": key})
            return result

        part = await refund({"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 1}]}, "refund-one-1")
        again = await refund({"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 1}]}, "refund-one-1")
        assert again["replayed"] is True
        assert again["record"]["txn_id"] == part["record"]["txn_id"]
        with pytest.raises(ApiProblemError) as err:
            await refund({"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 3}]}, "refund-too-much")
        assert err.value.status == 422
        rest = await refund({"txn_id": sale["txn_id"]}, "refund-rest-2")
        assert part["record"]["total_due"] + rest["record"]["total_due"] == sale["total_due"]
        assert rest["record"]["coupons_restored"] == sale["coupons"]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.points("M0002") == 0  # earned points clawed back exactly
        # The coupon is the customer's again: it can be used on a new sale.
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="CAKE", category="bakery", unit_price=30_000)
        await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
        with pytest.raises(ApiProblemError) as err:
            await refund({"txn_id": "01a20b44-d22e-7abc-8def-000000000000"}, "refund-unknown")
        assert err.value.status == 404


async def test_online_points_are_held_at_the_ledger_first(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    poor, rich = await issue_coupon(ledger, "M0003", "C-TART-2PTS"), await issue_coupon(ledger, "M0001", "C-TART-2PTS")
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000001"})
        await pos.add_line(basket, sku="BIG", category="bakery", unit_price=100_000)
        await pos.complete_cash(basket, 85_000)  # M0001 earns 8 points
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        await gw.services.refresher.refresh_once()

        async def tart(member_phone: str | None, member_token: str | None, coupon: str) -> dict[str, Any]:
            basket = (await pos.new_basket())["basket_id"]
            body = {"phone": member_phone} if member_phone else {"token": member_token}
            await pos.call("POST", f"/v1/baskets/{basket}/member", body)
            await pos.add_line(basket, sku="6901234567892", category="bakery", unit_price=800)
            priced = await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": coupon})
            result: dict[str, Any] = await pos.complete_cash(basket, priced["total_due"])
            return result

        sale = await tart("13800000001", None, rich)
        assert sale["record"]["reservation"]  # held at the ledger before the till said "done"
        # The terminal's cache thinks M0003 has points it does not: the ledger is the judge online.
        gw.services.directory.learn(type(gw.services.directory.lookup("M0003"))("M0003", "radiant", "active", (), 50))
        with pytest.raises(ApiProblemError) as err:
            await tart(None, await ledger.member_qr("M0003"), poor)
        assert err.value.body["type"] == "urn:posgw:problem:points-refused"
        assert "0 points available" in str(err.value.body["detail"])
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    assert await ledger.points("M0001") == 6
