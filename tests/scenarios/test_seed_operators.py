"""The seed operators' programmes run at the till as their operators run them (DOMAIN.md), end to end through
the till's API with real ledger processes: Joy City (满减 + tier + points offset, paid from the wallet, then the
tenant settlement to the fen), Kidswant (the black-gold card bought, earning 1.5×, lapsing), the points mall
(an order collected at the service desk, another cancelled), and a surge raised on the mall's alerts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocols.business_day import business_day
from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway
from tests.integration.test_mqtt import heard, mall, mqtt_ledger, watch  # noqa: F401 - fixtures

pytestmark = [pytest.mark.ledger]

DRESS = {"sku": "6900000000017", "name": "Dress", "category": "fashion", "quantity": 1, "unit_price": 40_000}
SHOES = {"sku": "6900000000024", "name": "Shoes", "category": "fashion", "quantity": 1, "unit_price": 40_000}


def cli(ledger: LedgerHandle, *args: str) -> str:
    done = ledger_cli(*args, *ledger.store_args())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def new_rules(tmp_path: Path, ledger: LedgerHandle, **changes: Any) -> None:
    """The rulebook in force, with ``changes``, as the next version."""
    body = (await ledger.rulebook()).to_wire()
    version = body["version"] + 1
    for own in ("phone_salt", "issuer_keys"):
        del body[own]
    (tmp_path / "rules.json").write_text(json.dumps(body | changes | {"version": version}))
    cli(ledger, "rulebook", "load", str(tmp_path / "rules.json"))
    await ledger.wait_rulebook(version)


async def member_basket(pos: PosClient, ledger: LedgerHandle, member_id: str) -> tuple[str, dict[str, Any]]:
    basket = (await pos.new_basket())["basket_id"]
    view = await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr(member_id)})
    return basket, view


async def tier_becomes(pos: PosClient, ledger: LedgerHandle, member_id: str, tier: str) -> None:
    """Until the till prices the member at ``tier`` (looked at every 0.1 s for 10 s)."""
    for _ in range(100):
        basket, view = await member_basket(pos, ledger, member_id)
        await pos.cancel(basket)
        if view["member"]["tier"] == tier:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the till still prices {member_id} at {view['member']['tier']}, not {tier}")


async def test_joy_city_a_supreme_member_on_an_offset_day_then_the_tenant_settles_to_the_fen(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    offset = (await ledger.rulebook()).offset
    assert offset is not None
    await new_rules(tmp_path, ledger, offset=offset.to_wire() | {"weekdays": []})  # today is an offset day
    cli(ledger, "member", "adjust", "M0002", "--points", "1000", "--reason", "points from earlier visits")
    config = gateway_config(
        tmp_path / "gw", ledger.url, tokens, merchant_id="M-FASHION", refresh_interval=1.0, min_refresh_interval=0.0
    )
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: s["rulebook_version"] == 2 and bool(s["members_cached"]))
        basket, _ = await member_basket(pos, ledger, "M0002")
        await pos.add_line(basket, **DRESS)
        view = await pos.call("POST", f"/v1/baskets/{basket}/points", {"points": 1_000})
        line = view["lines"][0]
        # Supreme 90 %, 满300减50 on what is left (¥360), 1,000 points as ¥10, never below the order of benefits.
        assert (line["tier_discount"], line["promotion_discount"], line["offset"], view["total_due"]) == (
            4_000,
            5_000,
            1_000,
            30_000,
        )
        paid = await pos.pay(basket, await ledger.wallet_code("M0002"))
        assert paid["payment"]["state"] == "paid"
        assert paid["basket"]["points_earned"] == 6  # ¥300 from the wallet ×2 (beats supreme ×1.5)
        record = (await pos.complete(basket))["record"]
        assert record["benefits"] == [
            {"kind": "tier", "rule": "supreme", "amount": 4_000},
            {"kind": "promotion", "rule": "P-FASHION-300-50", "amount": 5_000},
            {"kind": "offset", "rule": "offset", "amount": 1_000},
        ]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0
    assert await ledger.points("M0002") == 1_000 - 1_000 + 6
    report = json.loads(cli(ledger, "report", "settlement", "--json"))
    assert report["reconciles"] is True
    (fashion,) = [t for t in report["tenants"] if t["merchant_id"] == "M-FASHION"]
    assert (fashion["tenders"], fashion["offset"], fashion["mall_funded_discounts"]) == (
        {"wallet": 30_000},
        1_000,
        5_000,
    )
    assert fashion["tenant_points_cost"] == 3  # half of 6 points at 1 fen each
    assert fashion["net_due_to_tenant"] == 30_000 + 1_000 + 5_000 - 3


async def test_kidswant_black_gold_bought_earns_one_and_a_half_and_lapses_back(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(
        tmp_path / "gw", ledger.url, tokens, merchant_id="M-KIDS", refresh_interval=1.0, min_refresh_interval=0.0
    )
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        basket, _ = await member_basket(pos, ledger, "M0001")
        await pos.call("POST", f"/v1/baskets/{basket}/tier", {"tier": "black-gold"})
        await pos.complete(basket, cash=19_900)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        # Heard within a refresh: the till asks for the member news as soon as the ledger accepts the sale.
        await tier_becomes(pos, ledger, "M0001", "black-gold")
        shoes, _ = await member_basket(pos, ledger, "M0001")
        assert (await pos.add_line(shoes, **SHOES))["points_earned"] == 6  # ¥400 ×1.5
        await pos.complete(shoes, cash=40_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0
        # A year on, the card has run out: the nightly lapse puts the member back, and the till hears of it.
        book = await ledger.rulebook()
        after = business_day(datetime.now(UTC), book.zone) + timedelta(days=366)
        assert "M0001: black-gold → classic" in cli(ledger, "tiers", "lapse", "--day", after.isoformat())
        await tier_becomes(pos, ledger, "M0001", "classic")


async def test_the_points_mall_an_order_collected_at_the_service_desk_and_one_cancelled(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    cli(ledger, "catalogue", "add", "UMBRELLA", "--name", "Mall umbrella", "--points", "300", "--stock", "5")
    cli(ledger, "member", "adjust", "M0001", "--points", "800", "--reason", "a year of shopping")
    headers = {"Authorization": f"Bearer {tokens['app']}"}
    async with aiohttp.ClientSession(headers=headers) as app:
        orders = []
        for _ in range(2):
            async with app.post(f"{ledger.url}/v1/members/M0001/orders", json={"item_id": "UMBRELLA"}) as r:
                assert r.status == 201
                orders.append(await r.json())
        async with app.post(f"{ledger.url}/v1/members/M0001/orders/{orders[1]['order_id']}/cancel") as r:
            assert (r.status, (await r.json())["state"]) == (200, "cancelled")
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, merchant_id="M-SERVICE")
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        code = await ledger.member_qr("M0001")
        handed = await pos.call("POST", f"/v1/orders/{orders[0]['order_id']}/fulfil", {"code": code})
        assert (handed["state"], handed["points"]) == ("fulfilled", 300)
    assert await ledger.points("M0001") == 500  # the cancelled order took nothing
    assert "4 in stock  Mall umbrella" in cli(ledger, "catalogue", "list")


async def test_a_surge_is_raised_on_the_mall_s_alerts_and_the_excess_is_held_for_review(
    tmp_path: Path,
    mqtt_ledger: LedgerHandle,  # noqa: F811 - the fixture
    tokens: dict[str, str],
    mall: str,  # noqa: F811 - the fixture
) -> None:
    ledger = mqtt_ledger
    controls = {"member_daily_points": 100, "surge_factor": 2, "surge_floor": 150}
    await new_rules(tmp_path, ledger, controls=controls)
    started = asyncio.Event()
    surge = asyncio.create_task(watch(f"posgw/{mall}/alerts", lambda m: m.get("kind") == "surge", started))
    await started.wait()
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, refresh_interval=1.0, min_refresh_interval=0.0)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: s["rulebook_version"] == 2 and bool(s["members_cached"]))
        before = await ledger.points("M0001")
        for _ in range(2):  # ¥10,000 at the bakery, 85 %: 85 points each
            basket, _ = await member_basket(pos, ledger, "M0001")
            cake = {"sku": "6909876543212", "name": "Wedding cake", "category": "bakery", "unit_price": 1_000_000}
            await pos.add_line(basket, **cake)
            await pos.complete(basket, cash=850_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    alert = await heard(surge)
    assert alert["detail"].startswith("surge: member:M0001 earned 170 points")
    assert await ledger.points("M0001") == before + 100
    held = json.loads(cli(ledger, "controls", "held", "--json"))
    assert [(h["member_id"], h["points"]) for h in held] == [("M0001", 70)]


async def test_a_member_black_listed_at_the_ledger_is_refused_at_the_till_within_the_member_news_delay(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, refresh_interval=1.0, min_refresh_interval=0.0)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000002"})
        cli(ledger, "member", "status", "M0002", "--to", "blacklisted", "--reason", "card fraud ring")
        refused = None
        for _ in range(100):
            try:
                await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000002"})
            except ApiProblemError as err:
                refused = err
                break
            await asyncio.sleep(0.1)
        assert refused is not None, "the till still gives the black-listed member their benefits"
        assert "membership is blacklisted" in str(refused.body["detail"])


async def test_wangfujing_a_card_bound_stored_value_topped_up_and_spent_and_a_gift_card_sold_and_redeemed(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    issued = json.loads(cli(ledger, "giftcards", "issue", "--count", "1", "--json"))
    wallet_before = (await ledger.account("M0001"))["wallet"]
    assert isinstance(wallet_before, int)
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        # The member's new physical card, bound at the till while they show their code.
        basket, _ = await member_basket(pos, ledger, "M0001")
        bound = await pos.call("POST", f"/v1/baskets/{basket}/card", {"number": "8600000777"})
        assert (bound["bound"], bound["weak"]) == ("now", True)
        # 充500送50: ¥500 in cash, ¥50 more as a bonus.
        await pos.call("POST", f"/v1/baskets/{basket}/topup", {"amount": 50_000})
        await pos.complete(basket, cash=50_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await ledger.account("M0001"))["wallet"] == wallet_before + 55_000
        # A cake paid from the stored value (the bonus spent first).
        cake, _ = await member_basket(pos, ledger, "M0001")
        await pos.add_line(cake, sku="6909876543212", name="Cake", category="bakery", unit_price=20_000)
        paid = await pos.pay(cake, await ledger.wallet_code("M0001"))
        assert paid["payment"]["state"] == "paid"
        await pos.complete(cake)
        # A gift card sold for ¥200 to a friend, who pays part of a basket with it.
        gift = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{gift}/giftcards", {"code": issued["code"], "amount": 20_000})
        await pos.complete(gift, cash=20_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        friend = (await pos.new_basket())["basket_id"]
        await pos.add_line(friend, sku="6901234567892", name="Egg tarts", category="bakery", unit_price=25_000)
        too_much = (await pos.pay(friend, issued["code"]))["payment"]  # the whole ¥250: more than the card holds
        assert (too_much["state"], "has 20000 fen to spend" in too_much["message"]) == ("declined", True)
        assert (await pos.pay(friend, issued["code"], amount=20_000))["payment"]["state"] == "paid"
        await pos.complete(friend, cash=5_000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0
        assert (await pos.call("POST", "/v1/giftcards/balance", {"code": issued["code"]}))["balance"] == 0
    assert (await ledger.account("M0001"))["wallet"] == wallet_before + 55_000 - 17_000  # 85 % of ¥200
    assert "books hold" in cli(ledger, "check")
