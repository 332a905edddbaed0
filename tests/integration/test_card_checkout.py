"""Tap to discount: virtual card → real pcscd → PC/SC driver → gateway → basket, with a real ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.demo_data import DEMO_CARD_FROZEN, DEMO_CARD_M0002, DEMO_UID_M0003
from simulators.pos_client import PosClient
from simulators.vcard import VirtualCard, make_applet
from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = [pytest.mark.pcsc, pytest.mark.ledger, pytest.mark.usefixtures("pcscd")]


async def ready(pos: PosClient) -> str:
    await pos.connect_events()
    await pos.wait_status(
        lambda s: (
            bool(s["members_cached"]) and any(d["device"] == "cards" and d["state"] == "idle" for d in s["devices"])
        )
    )
    return str((await pos.new_basket())["basket_id"])


async def tap(pos: PosClient, cards: list[VirtualCard], card: VirtualCard) -> dict[str, Any]:
    cards.append(card)
    card.insert()
    event = await pos.next_event("card", within=15)
    while event["kind"] == "removed":
        event = await pos.next_event("card", within=15)
    return event


async def test_tapping_a_member_card_prices_the_basket(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], cards: list[VirtualCard]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, card_reader=True)
    async with running_gateway(config) as (_gw, pos):
        basket = await ready(pos)
        await pos.add_line(basket, sku="6901234567892", name="Cake", category="bakery", unit_price=10_000)
        event = await tap(pos, cards, VirtualCard(make_applet("member", ledger.issuer_key(), DEMO_CARD_M0002)))
        assert event["member"] == {"member_id": "M0002", "tier": "supreme", "via": "card", "weak": False}
        assert event["basket_id"] == basket
        assert event["pcsc_ms"] > 0
        priced = await pos.basket(basket)
        assert priced["member"]["via"] == "card"
        assert priced["total_due"] == 9_000  # supreme pays 90 %
        sale = await pos.complete_cash(basket, 9_000)
        assert sale["record"]["member_via"] == "card"


async def test_a_uid_only_card_identifies_the_member_as_weak(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], cards: list[VirtualCard]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, card_reader=True)
    async with running_gateway(config) as (_gw, pos):
        basket = await ready(pos)
        applet = make_applet("uid-only", ledger.issuer_key(), uid=bytes.fromhex(DEMO_UID_M0003))
        event = await tap(pos, cards, VirtualCard(applet))
        assert event["member"] == {"member_id": "M0003", "tier": "radiant", "via": "card-uid", "weak": True}
        assert (await pos.basket(basket))["member"]["weak"] is True


@pytest.mark.parametrize(
    ("mode", "number", "code"),
    [
        ("cloned", DEMO_CARD_M0002, "card-forged"),
        ("expired", DEMO_CARD_M0002, "card-expired"),
        ("member", DEMO_CARD_FROZEN, "member-refused"),
        ("member", "8611112222", "unknown-member"),
        ("garbage", DEMO_CARD_M0002, "card-unreadable"),
    ],
)
async def test_refused_cards_never_attach_a_member(
    mode: str,
    number: str,
    code: str,
    tmp_path: Path,
    ledger: LedgerHandle,
    tokens: dict[str, str],
    cards: list[VirtualCard],
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, card_reader=True)
    async with running_gateway(config) as (_gw, pos):
        basket = await ready(pos)
        event = await tap(pos, cards, VirtualCard(make_applet(mode, ledger.issuer_key(), number)))
        assert event["card_error"]["code"] == code
        assert event["card_error"]["message"]
        assert "member" not in event
        assert (await pos.basket(basket))["member"] is None


async def test_a_card_the_cache_does_not_know_is_looked_up_online(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], cards: list[VirtualCard]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, card_reader=True)
    async with running_gateway(config) as (_gw, pos):
        basket = await ready(pos)
        await ledger.add_identifier("M0001", "card:8600007777")  # issued after the terminal's snapshot
        event = await tap(pos, cards, VirtualCard(make_applet("member", ledger.issuer_key(), "8600007777")))
        assert event["member"]["member_id"] == "M0001"
        assert event["basket_id"] == basket
