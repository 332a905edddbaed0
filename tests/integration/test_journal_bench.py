"""The journal bench runs end to end and its ceiling is computed from its own figures."""

from __future__ import annotations

from bench import journal_bench


async def test_journal_bench_reports_the_one_producer_ceiling() -> None:
    r = await journal_bench.run(n=40, rounds=1, drain=False)
    raw_us = 1e6 / r["raw_sqlite_commits_per_s"]
    assert r["writer_round_trip_us"] > 0
    # raw ÷ (raw + crossing), so strictly under 1 and consistent with the two figures.
    assert r["ceiling_1_producer_vs_raw"] == raw_us / (raw_us + r["writer_round_trip_us"])
    assert 0 < r["ceiling_1_producer_vs_raw"] < 1
    assert r["journal_1_producer_per_s"] > 0
    assert r["persist_queue_16_producers_per_s"] > 0
