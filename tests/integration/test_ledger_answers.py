"""A till believes only answers its pinned ledger key signed for the very request (a hostile network between).

Each case first reproduced what a hostile review saw: three sales marked synced
by forged ``accepted`` answers, an unknown phone number identified as another
member by an injected look-up. Then: records the ledger lacks but the till had
as delivered are sent again, on every hello and on a sync answer's gaps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulators.ledger_proxy import LedgerProxy
from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway, until

pytestmark = [pytest.mark.ledger]


@pytest.fixture
async def proxy(ledger: LedgerHandle) -> AsyncIterator[LedgerProxy]:
    hostile = LedgerProxy(ledger.url)
    await hostile.start()
    try:
        yield hostile
    finally:
        await hostile.stop()


async def held_seqs(ledger: LedgerHandle, terminal_id: str = "T-TEST-01") -> list[int]:
    records = (await ledger._app_call("GET", f"/v1/terminals/{terminal_id}/transactions", role="operator"))["records"]
    assert isinstance(records, list)
    return [int(r["seq"]) for r in records]


async def test_forged_and_replayed_sync_answers_leave_the_sales_queued(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], proxy: LedgerProxy
) -> None:
    config = gateway_config(tmp_path / "gw", proxy.url, tokens)
    await ledger.enrol_gateway(config)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["ledger"]["online"]))
        for mode in ("fake-accept", "replay"):
            proxy.mode, proxy.faked = mode, 0
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="A", unit_price=100)
            await pos.complete_cash(basket, 100)
            await until(lambda: proxy.faked >= 2, within=10)
            status = await pos.status()
            assert status["journal"]["pending"] >= 1, mode  # nothing the forger said was believed
            assert "not the ledger's" in status["ledger"]["last_error"], mode
            assert status["ledger"]["online"] is False
        assert await held_seqs(ledger) == []
        proxy.mode = "relay"
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    assert await held_seqs(ledger) == [1, 2]  # each sale at the ledger, once


async def test_an_injected_identifier_lookup_does_not_identify_anyone(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], proxy: LedgerProxy
) -> None:
    config = gateway_config(tmp_path / "gw", proxy.url, tokens)
    await ledger.enrol_gateway(config)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and bool(s["ledger"]["online"]))
        victim = gw.services.directory.lookup("M0002")
        proxy.mode, proxy.forged_member = "forge-lookup", victim.to_wire()
        basket = (await pos.new_basket())["basket_id"]
        with pytest.raises(ApiProblemError) as err:
            await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13999999999"})
        assert err.value.body["type"] == "urn:posgw:problem:ledger-unverified"
        assert proxy.faked == 1
        assert (await pos.basket(basket)).get("member") is None
        proxy.mode = "relay"  # the genuine answer: nobody has this number
        with pytest.raises(ApiProblemError) as err:
            await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13999999999"})
        assert err.value.body["type"] == "urn:posgw:problem:unknown-member"


def _take_as_delivered(journal: Path, *seqs: int) -> None:
    """What a till that once believed a forged answer has in its journal (the failure, reproduced)."""
    with sqlite3.connect(journal) as conn:
        conn.executemany(
            "UPDATE journal SET sync_status = 'accepted', synced_at = '2026-12-01T00:00:00Z' WHERE seq = ?",
            [(s,) for s in seqs],
        )


async def sell_offline(pos: PosClient, count: int) -> None:
    for _ in range(count):
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="A", unit_price=100)
        await pos.complete_cash(basket, 100)


async def test_records_the_ledger_lacks_are_sent_again_at_start_and_on_a_gap(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], proxy: LedgerProxy
) -> None:
    config = gateway_config(tmp_path / "gw", proxy.url, tokens)
    await ledger.enrol_gateway(config)
    proxy.mode = "hang"  # offline: the sales wait in the journal
    async with running_gateway(config) as (_gw, pos):
        await sell_offline(pos, 3)
    _take_as_delivered(config.journal_path, 1, 2)
    proxy.mode = "relay"
    async with running_gateway(config) as (gw, pos):
        said = gw.services.recent_errors  # alerts, as the status page lists them
        told = "ledger-missing-records: the ledger lacks 2 record(s) this till had as delivered (seq 1–2)"
        await until(lambda: any(told in line for line in said), within=20)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await held_seqs(ledger) == [1, 2, 3]
        # Later, in the same run: seq 4 taken as delivered, seq 5 sent; the ledger's answer names the gap.
        proxy.mode = "hang"
        await sell_offline(pos, 2)
        _take_as_delivered(config.journal_path, 4)
        proxy.mode = "relay"
        told = "ledger-missing-records: the ledger lacks 1 record(s) this till had as delivered (seq 4)"
        await until(lambda: any(told in line for line in said), within=20)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert gw.services.link.state.resent_total == 3
    assert await held_seqs(ledger) == [1, 2, 3, 4, 5]
