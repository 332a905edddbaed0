"""Joining at the till (开卡): a customer enrolled by phone number earns on the sale in progress, online or
offline; the ledger makes the member, or merges them into the member who turned out to carry the number."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocols.phone import phone_identifier
from protocols.tokens import b64url_decode
from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]


async def buy(pos: PosClient, basket: str, amount: int) -> dict[str, object]:
    await pos.add_line(basket, sku="6901234567892", name="Cake", category="bakery", unit_price=amount)
    sale: dict[str, object] = (await pos.complete_cash(basket, amount))["record"]
    return sale


async def test_a_customer_joins_online_and_earns_on_the_sale_in_progress(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        joined = await pos.call("POST", f"/v1/baskets/{basket}/join", {"phone": "139 1234 0001"})
        member = joined["member"]
        assert member["member_id"].startswith("J-T-TEST-01-")
        assert member["tier"] == "classic"  # the joining tier of the test rulebook
        sale = await buy(pos, basket, 250_00)
        assert (sale["member_id"], sale["member_via"]) == (member["member_id"], "phone")
        assert isinstance(sale["points_earned"], int)
        assert sale["points_earned"] > 0
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.points(member["member_id"]) == sale["points_earned"]
        # The same number again: a member now, here and at the ledger; attached by phone instead.
        with pytest.raises(ApiProblemError) as again:
            await pos.call("POST", "/v1/members", {"phone": "13912340001"})
        assert again.value.status == 409
        assert again.value.body["type"] == "urn:posgw:problem:already-a-member"
        nxt = (await pos.new_basket())["basket_id"]
        found = await pos.call("POST", f"/v1/baskets/{nxt}/member", {"phone": "13912340001"})
        assert found["member"]["member_id"] == member["member_id"]
    # The number never reaches the journal: only its salted hash.
    journal = b"".join(p.read_bytes() for p in config.journal_path.parent.glob(config.journal_path.name + "*"))
    assert b"13912340001" not in journal
    assert b'"kind":"join"' in journal


async def test_offline_a_customer_who_was_a_member_already_is_merged_and_keeps_the_points(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, refresh_interval=1.0, min_refresh_interval=0.0)
    phone = "13912340002"
    m3_before, book = await ledger.points("M0003"), await ledger.rulebook()
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        ledger.stop()
        await pos.wait_status(lambda s: not s["ledger"]["online"])
        joined = await pos.call("POST", "/v1/members", {"phone": phone})
        assert joined["offline"] is True
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": phone})
        sale = await buy(pos, basket, 300_00)
        assert sale["offline"] is True
        assert sale["member_id"] == joined["member_id"]
    # Meanwhile another till had enrolled the same person as M0003 (written behind the stopped ledger).
    identifier = phone_identifier(phone, b64url_decode(book.phone_salt))
    await ledger.tamper(f"INSERT INTO identifiers (identifier, member_id) VALUES ('{identifier}', 'M0003')")
    async with running_gateway(config) as (_gw, pos):
        # After a restart, still offline: the customer enrolled here is a member here.
        nxt = (await pos.new_basket())["basket_id"]
        found = await pos.call("POST", f"/v1/baskets/{nxt}/member", {"phone": phone})
        assert found["member"]["member_id"] == joined["member_id"]
        await pos.cancel(nxt)
        await ledger.start()
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0 and s["ledger"]["online"], within=30)

        async def attached() -> str:
            b = (await pos.new_basket())["basket_id"]
            m = (await pos.call("POST", f"/v1/baskets/{b}/member", {"phone": phone}))["member"]["member_id"]
            await pos.cancel(b)
            return str(m)

        for _ in range(100):  # the next member delta says who the customer is
            if await attached() == "M0003":
                break
            await asyncio.sleep(0.1)
        assert await attached() == "M0003"
    assert isinstance(sale["points_earned"], int)
    assert sale["points_earned"] > 0
    assert await ledger.points("M0003") == m3_before + sale["points_earned"]  # nothing lost, nobody made twice
