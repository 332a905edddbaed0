"""A flood of silent connections to the local API cannot exhaust the daemon's descriptors or lock the POS app out.

The failure reproduced: 1,100 idle half-open connections (no token needed to
open one) used up the file descriptors, the log grew 40 MB in 25 s, then the
member cache could not be saved and the daemon exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from gateway.api.door import Door, connection_budget
from tests.harness import gateway_config, running_gateway, until

pytestmark = [pytest.mark.ledger]


def test_the_connection_budget_leaves_descriptors_for_the_till() -> None:
    assert connection_budget(256, 65536) == 256
    assert connection_budget(256, 1024) == 256  # (1,024 - 128) / 2 = 448 would fit more
    assert connection_budget(256, 256) == 64
    assert connection_budget(256, 100) == 4  # never none at all


async def test_silent_connections_are_dropped_and_the_pos_app_still_gets_in(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    config = gateway_config(
        tmp_path / "gw", "http://127.0.0.1:9", tokens, api={"max_connections": 32, "first_byte_timeout": 1.0}
    )
    async with running_gateway(config) as (gw, pos):
        door = gw.door
        assert isinstance(door, Door)
        assert door.max_connections == 32
        flood: list[socket.socket] = []
        try:
            for _ in range(600):  # far past the limit, none says a word
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", gw.port or 0))
                flood.append(s)
                if len(flood) % 50 == 0:
                    await asyncio.sleep(0)  # let the daemon accept
                    assert (await pos.status())["terminal_id"] == "T-TEST-01"  # the POS app gets in, every time
                    assert door.counts.open <= 32
            await until(lambda: door.counts.evicted > 400, within=10)
            assert door.counts.refused == 0  # the POS app's connections were never turned away
            # The silent ones left are closed after the first-byte timeout.
            await until(lambda: door.counts.open <= 1, within=10)
            assert door.counts.silent > 0
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="A", unit_price=100)
            assert (await pos.complete_cash(basket, 100))["record"]["seq"] == 1
        finally:
            for s in flood:
                s.close()
