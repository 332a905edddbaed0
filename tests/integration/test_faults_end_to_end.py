"""Faults that used to end the daemon, end to end: a really full disk, and descriptors run short.

Reproduced first: with the disk full, sales answered 507, then the member
cache's save raised ``OSError`` and the daemon exited 1; 1,100 idle
half-open connections used up the descriptors and the same save failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from simulators.network_chaos import fill
from simulators.pos_client import ApiProblemError, PosClient
from simulators.processes import Proc, free_port
from tests.harness import LedgerHandle, gateway_config, running_gateway, until

pytestmark = [pytest.mark.ledger]


async def sell(pos: PosClient) -> dict[str, object]:
    basket = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, sku="A", unit_price=100)
    sale: dict[str, object] = await pos.complete_cash(basket, 100)
    return sale


async def sell_until_refused(pos: PosClient) -> int:
    """The status of the first refused sale (the first ones may still fit in pages SQLite holds)."""
    for _ in range(50):
        try:
            await sell(pos)
        except ApiProblemError as err:
            return err.status
    return 200


async def test_a_full_disk_refuses_the_sale_alerts_on_the_cache_and_the_daemon_sells_on(
    small_fs: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(small_fs / "state", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and bool(s["ledger"]["online"]))
        await sell(pos)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        filler = fill(small_fs)
        assert await sell_until_refused(pos) == 507
        gw.services.refresher.kick_now()  # the ledger's rules come in; saving them meets the full disk
        said = gw.services.recent_errors
        await until(lambda: any("member-cache-not-saved" in line for line in said), within=20)
        assert (await pos.status())["terminal_id"] == "T-TEST-01"  # the daemon is there, answering
        filler.unlink()
        await sell(pos)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        sold = (await pos.status())["journal"]["last_seq"]
    records = (await ledger._app_call("GET", "/v1/terminals/T-TEST-01/transactions", role="operator"))["records"]
    assert isinstance(records, list)
    assert [r["seq"] for r in records] == list(range(1, sold + 1))  # every acknowledged sale, once


async def test_half_open_connections_cannot_use_up_the_descriptors_of_a_daemon_with_few(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    port = free_port()
    state = tmp_path / "gw"
    config_path = tmp_path / "gateway.toml"
    config_path.write_text(
        f'state_dir = "{state}"\n[terminal]\nid = "T-TEST-01"\nstore_id = "S-1"\nmerchant_id = "M-BAKERY"\n'
        f'[api]\nport = {port}\ntoken_env = "POSGW_API_TOKEN"\nfirst_byte_timeout = 2.0\n'
        f'[ledger]\nurl = "{ledger.url}"\nsync_interval = 0.5\nrefresh_interval = 1.0\nmin_refresh_interval = 0\n'
        '[logging]\nformat = "json"\n'
    )
    env = {**os.environ, "POSGW_API_TOKEN": tokens["api"]}
    await ledger.enrol_gateway(load_config(config_path, env=env))
    # 200 descriptors, hard limit too: the daemon may not lift it. Its connection budget is then 36.
    argv = ["prlimit", "--nofile=200:200", sys.executable, "-m", "gateway.cli", "run", "-c", str(config_path)]
    daemon = Proc("gateway", argv, env, tmp_path / "gateway.log", f"http://127.0.0.1:{port}/healthz")
    daemon.start()
    flood: list[socket.socket] = []
    try:
        await daemon.wait_healthy()
        async with PosClient(f"http://127.0.0.1:{port}", tokens["api"]) as pos:
            await pos.wait_status(lambda s: bool(s["members_cached"]) and bool(s["ledger"]["online"]))
            for i in range(1100):
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", port))
                flood.append(s)
                if i % 100 == 99:
                    await asyncio.sleep(0.05)
                    await sell(pos)  # the POS app gets in, every time
            cache = state / "ledger-cache.json"
            before = cache.stat().st_mtime_ns
            await until(lambda: cache.stat().st_mtime_ns != before, within=20)  # refreshed and saved meanwhile
            await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert daemon.popen is not None
        assert daemon.popen.poll() is None  # still running
        log = (tmp_path / "gateway.log").read_text()
        assert "Too many open files" not in log
        assert log.count("api_silent_connection_dropped") <= 25  # said, within the log budget
        assert len(log) < 1_000_000
    finally:
        for s in flood:
            s.close()
        assert daemon.stop() == 0
