"""Journal limits: non-cash refused past a limit, cash always taken, an alert raised, nothing dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from offline_queue.limits import JournalLimits
from offline_queue.rows import JournalStats
from tests.harness import gateway_config, running_gateway


def stats(pending: int = 0, size: int = 0, oldest: str | None = None) -> JournalStats:
    return JournalStats(pending, pending, {"CNY": 100 * pending}, oldest, pending, 0, None, size, [])


def test_each_limit_is_named() -> None:
    limits = JournalLimits(max_records=10, max_bytes=1000, max_pending_age=3600)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert limits.breaches(stats(9, 999, "2026-11-24T11:30:00.000Z"), now) == []
    breaches = limits.breaches(stats(10, 1000, "2026-11-24T10:00:00.000Z"), now)
    assert breaches == [
        "10 records wait to be synced (limit 10)",
        "the journal uses 1000 bytes (limit 1000)",
        "the oldest unsynced sale is 2.0 h old (limit 1.0 h)",
    ]


async def test_past_a_limit_cash_is_still_taken_and_an_alert_raised(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        gw.services.sync.limits = JournalLimits(max_records=2, max_bytes=10**12, max_pending_age=10**9)
        await pos.connect_events()
        for i in range(3):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku=f"A{i}", unit_price=100)
            sale = await pos.complete_cash(basket, 100)
            assert sale["record"]["seq"] == i + 1
        alert = await pos.next_event("alert")
        assert alert["code"] == "journal-limit"
        assert "limit 2" in alert["message"]
        status = await pos.status()
        assert status["journal"]["pending"] == 3
        assert status["journal"]["limits_breached"]
