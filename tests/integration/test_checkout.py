"""The whole checkout: scanner on a pty, gateway, a real ledger process."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import aiohttp
import pytest

from protocols.phone import phone_identifier
from protocols.tokens import b64url_decode
from simulators.pos_client import ApiProblemError
from simulators.scanner import PtyScanner
from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


def online_with_rules(s: dict[str, object]) -> bool:
    return bool(s["members_cached"]) and bool(s["ledger"]["online"])  # type: ignore[index]


async def test_member_checkout_end_to_end(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], pty_scanner: PtyScanner
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, scanner=pty_scanner.link)
    async with running_gateway(config) as (_gw, pos):
        await pos.connect_events()
        await pos.wait_status(lambda s: online_with_rules(s) and s["devices"][0]["state"] == "idle")
        basket = (await pos.new_basket())["basket_id"]

        pty_scanner.send(await ledger.member_qr("M0001"), aim="]Q1")
        scan = await pos.next_event("scan")
        assert scan["kind"] == "member_token"
        assert scan["data"] is None  # a token is never echoed
        assert scan["member"] == {"member_id": "M0001", "tier": "classic", "via": "qr", "weak": False}
        assert scan["basket_id"] == basket

        pty_scanner.send("6901234567892", aim="]E0")
        scan = await pos.next_event("scan")
        assert (scan["kind"], scan["data"], scan["detail"]) == ("product", "6901234567892", "ean-13")

        await pos.add_line(basket, sku="6901234567892", name="Egg tart", category="bakery", unit_price=4250, quantity=3)
        await pos.add_line(basket, sku="GC200", name="Gift card", category="gift-card", unit_price=20_000)
        priced = await pos.basket(basket)
        # classic tier pays 85 % at M-BAKERY: 12750 × 0.85 = 10837.5 → 10838 (half-up); gift cards never discounted.
        assert [(x["net"], x["discount"]) for x in priced["lines"]] == [(10838, 1912), (20000, 0)]
        assert priced["total_due"] == 30838
        assert priced["points_earned"] == 1  # the gift card earns nothing: 10838 fen → 1 point

        sale = await pos.complete_cash(basket, 31000, key="sale-1-key")
        record = sale["record"]
        assert (record["seq"], record["change"], record["member_id"], record["offline"]) == (1, 162, "M0001", False)

        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.points("M0001") == 1


async def test_offline_sale_drains_when_the_ledger_returns(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        qr = await ledger.member_qr("M0002")
        ledger.stop()
        await pos.wait_status(lambda s: not s["ledger"]["online"])

        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": qr})
        await pos.add_line(basket, sku="6901234567892", name="Cake", category="bakery", unit_price=50_000)
        sale = await pos.complete_cash(basket, 50_000)
        assert sale["record"]["offline"] is True
        assert sale["record"]["total_due"] == 45_000  # supreme: 90 %
        status = await pos.status()
        assert status["journal"]["pending"] == 1

        await ledger.start()
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0 and s["ledger"]["online"], within=30)
        assert await ledger.points("M0002") == 6  # 45000 fen × 1.5 (the supreme campaign) → 6


async def test_a_retried_completion_after_a_restart_is_not_a_second_sale(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    key = uuid.uuid4().hex
    async with running_gateway(config) as (_gw, pos):
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="X1", unit_price=999)
        first = await pos.complete_cash(basket, 1000, key=key)
    async with running_gateway(config) as (_gw, pos):
        again = await pos.complete_cash(basket, 1000, key=key)
        assert again["replayed"] is True
        assert again["record"] == first["record"]
        assert (await pos.status())["journal"]["total"] == 1


async def test_member_scanned_before_the_basket_attaches_to_the_next_one(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        result = await pos.call("POST", "/v1/scans", {"data": await ledger.member_qr("M0003")})
        assert result["basket_id"] is None
        basket = await pos.new_basket()
        assert basket["member"]["member_id"] == "M0003"


async def test_a_journal_restored_from_an_old_backup_is_flagged_not_silently_reused(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (_gw, pos):
        for i in range(3):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku=f"B{i}", unit_price=100)
            await pos.complete_cash(basket, 100)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    for leftover in (tmp_path / "gw").glob("journal.sqlite3*"):
        leftover.unlink()  # the journal is lost; the terminal key survives
    async with running_gateway(config) as (_gw, pos):
        await pos.connect_events()
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="C1", unit_price=100)
        sale = await pos.complete_cash(basket, 100)
        assert sale["record"]["seq"] == 1
        alert = await pos.next_event("alert")
        assert alert["code"] == "journal-behind-ledger"
        status = await pos.wait_status(lambda s: s["journal"]["rejected"] == 1)
        # Found on the first comparison with the ledger: before or after this sale was journaled.
        found = status["ledger"]["integrity_error"]
        assert re.search(r"holds seq 3 .* journal ends at [01]: records were lost", found), found


async def test_a_member_code_identifies_a_member_for_one_sale_only(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        qr = await ledger.member_qr("M0001")
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": qr})
        await pos.add_line(basket, sku="A", unit_price=100)
        await pos.complete_cash(basket, 100)
        basket = (await pos.new_basket())["basket_id"]
        with pytest.raises(ApiProblemError) as err:
            await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": qr})
        assert err.value.body["type"] == "urn:posgw:problem:member-code-used"
        scan = await pos.call("POST", "/v1/scans", {"data": qr})
        assert scan["member_error"]["code"] == "member-code-used"
        fresh = await ledger.member_qr("M0001")
        assert (await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": fresh}))["member"][
            "member_id"
        ] == "M0001"


async def test_a_member_found_by_phone_number_without_keeping_the_number(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        found = await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "+86 138-0000-0001"})
        assert found["member"] == {"member_id": "M0001", "tier": "classic", "via": "phone", "weak": False}
        for phone, problem in [
            ("13999999999", "unknown-member"),
            ("12345", "invalid-document"),
            ("12000000000", "code-error"),
        ]:
            with pytest.raises(ApiProblemError) as err:
                await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": phone})
            assert err.value.body["type"] == f"urn:posgw:problem:{problem}", phone
        # A number registered after the terminal's snapshot is found online, by its hash only.
        salt = b64url_decode(gw.services.directory.rulebook.phone_salt)
        await ledger.add_identifier("M0003", phone_identifier("13800000003", salt))
        later = await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000003"})
        assert later["member"]["member_id"] == "M0003"
        await pos.add_line(basket, sku="A", unit_price=100)
        await pos.complete_cash(basket, 100)
    assert not [f for f in (tmp_path / "gw").iterdir() if f.is_file() and b"1380000000" in f.read_bytes()]


async def test_the_member_cache_is_kept_current_by_deltas(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (gw, pos):
        await pos.wait_status(online_with_rules)
        directory = gw.services.directory
        first_version = directory.members_version
        await ledger.add_identifier("M0001", "card:8600005555")
        await gw.services.refresher.refresh_once()  # a delta: only M0001 changed
        assert directory.members_version > first_version
        assert len(directory.members or {}) == 4
        member = directory.by_identifier("card:8600005555")
        assert member is not None
        assert member.member_id == "M0001"


async def test_a_wallet_pay_code_identifies_the_member_in_the_same_scan(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {tokens['app']}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{ledger.url}/v1/members/M0002/qr", params={"kind": "wallet"}) as r,
    ):
        wallet = str((await r.json())["token"])
    assert wallet.startswith("PW1.")
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        scan = await pos.call("POST", "/v1/scans", {"data": wallet})
        assert scan["kind"] == "wallet_code"
        assert scan["member"] == {"member_id": "M0002", "tier": "supreme", "via": "wallet", "weak": False}
        assert scan["basket_id"] == basket
