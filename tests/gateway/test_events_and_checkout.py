"""Event fan-out and concurrent completions, in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.events import QUEUE_SIZE, EventHub, Overflow, ReaderChanged
from simulators.pos_client import ApiProblemError
from tests.harness import gateway_config, running_gateway


async def test_a_slow_subscriber_is_cut_off_not_buffered_forever() -> None:
    hub = EventHub()
    async with hub.subscribe() as slow, hub.subscribe() as fast:
        for i in range(QUEUE_SIZE + 5):
            hub.publish(ReaderChanged(device="r", reader=f"reader {i}", present=True))
            if not fast.empty():
                await fast.get()
        assert hub.subscriber_count == 1
        items = [slow.get_nowait() for _ in range(slow.qsize())]
        overflow = items[-2]
        assert isinstance(overflow, Overflow)
        assert overflow.to_wire()["type"] == "overflow"
        assert items[-1] is None


async def test_two_concurrent_completions_record_one_sale(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (_gw, pos):
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="A", unit_price=500)
        results = await asyncio.gather(
            pos.complete_cash(basket, 500, key="first-key-1"),
            pos.complete_cash(basket, 500, key="second-key-2"),
            return_exceptions=True,
        )
        sales = [r for r in results if isinstance(r, dict)]
        conflicts = [r for r in results if isinstance(r, ApiProblemError)]
        assert len(sales) == 1
        assert [c.status for c in conflicts] == [409]
        assert (await pos.status())["journal"]["total"] == 1


async def test_draining_refuses_new_baskets(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        gw.services.intake.draining = True
        with pytest.raises(ApiProblemError) as err:
            await pos.new_basket()
        assert (err.value.status, err.value.body["type"]) == (503, "urn:posgw:problem:shutting-down")
