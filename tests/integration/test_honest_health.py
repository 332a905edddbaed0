"""A till says what is wrong with it, by name, everywhere: /readyz, posgw status, the status page, the metrics.

Reproduced first: a till whose key the ledger refused, or which had never
loaded a rulebook, showed a green "Ledger: online", /readyz ready and a clean
`posgw status`, and flipped online/offline in its log; after the ledger came
back, queued sales waited for the backoff (up to ~9 s, and more).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.ops.status_cli import status_text
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway, until
from tests.integration.test_status_page import chromium

pytestmark = [pytest.mark.ledger]


def failing(checks: list[dict[str, Any]]) -> dict[str, str]:
    return {c["name"]: c["reason"] for c in checks if not c["ok"]}


async def test_a_till_the_ledger_refuses_says_so_everywhere_and_never_flips_to_online(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and bool(s["ledger"]["online"]))
        assert failing((await pos.status())["checks"]) == {}
        assert "every check holds" in status_text(await pos.status())
        assert ledger_cli("terminal", "retire", "T-TEST-01", *ledger.store_args()).returncode == 0
        await pos.wait_status(lambda s: "terminal-accepted" in failing(s["checks"]), within=20)
        seen_online = []
        for _ in range(15):  # three seconds of sync and refresh rounds: offline all along, no flip
            seen_online.append((await pos.status())["ledger"]["online"])
            await asyncio.sleep(0.2)
        assert not any(seen_online)
        status = await pos.status()
        assert "not an enrolled terminal" in failing(status["checks"])["terminal-accepted"]
        assert "! terminal-accepted:" in status_text(status)
        ready = await pos.call("GET", "/readyz")
        assert ready["ready"] is True  # sales are still taken (offline): not ready would stop the till
        assert "terminal-accepted" in failing(ready["checks"])
        page = await gw.services.status_page()
        assert "terminal-accepted" in failing(page["checks"])
        url = f"http://127.0.0.1:{gw.port}/status"
        shown = (await asyncio.to_thread(chromium, "--dump-dom", url)).stdout
        assert "Ledger: OFFLINE" in shown
        assert 'data-check="terminal-accepted"' in shown  # its own banner, with the reason
        metrics = gw.services.metrics.render().decode()
        assert 'posgw_check_ok{check="terminal-accepted"} 0.0' in metrics
        assert 'posgw_check_ok{check="journal"} 1.0' in metrics


async def test_a_till_that_never_reached_the_ledger_names_what_it_lacks(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (_gw, pos):
        problems = failing((await pos.status())["checks"])
        assert set(problems) >= {"enrolled", "ledger", "rulebook", "members"}
        assert "posgw enroll" in problems["enrolled"]
        assert "no rulebook has been loaded" in problems["rulebook"]


async def test_queued_sales_go_within_a_probe_of_the_ledger_coming_back_not_at_the_backoffs_end(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["ledger"]["online"]))
        ledger.stop()
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="A", unit_price=100)
        await pos.complete_cash(basket, 100)
        backoff = gw.services.sync.backoff
        await until(lambda: backoff.attempt >= 6, within=60)
        failed_at = asyncio.get_running_loop().time()
        floor = 0.5 * backoff.base * (1 << (backoff.attempt - 1))  # the wait just drawn is at least this (8 s)
        await ledger.start()
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0, within=30)
        drained_after = asyncio.get_running_loop().time() - failed_at
        # The backoff alone would have waited until floor at the earliest; a probe a second finds the ledger back.
        assert drained_after < floor, (drained_after, floor)
