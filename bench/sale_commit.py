"""Complete-sale latency through the API, beside a raw SQLite WAL-FULL commit loop.

The gateway figure is one ``POST /v1/baskets/{id}/complete`` (cash), which
prices the basket, writes the record to the journal and fsyncs before
answering. The peer is the smallest durable write the same disk can do: a
single-row INSERT + COMMIT into SQLite in WAL mode with ``synchronous=FULL``,
in the same directory, in this process.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.environment import BenchRig
from bench.stats import summary


def raw_sqlite_commits(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    body = json.dumps({"pad": "x" * 900})  # about the size of a one-line sale record
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
    conn.close()
    return samples


async def gateway_completions(rig: BenchRig, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        basket = (await rig.pos.new_basket())["basket_id"]
        await rig.pos.add_line(basket, sku="6901234567892", name="Egg tart", category="bakery", unit_price=3800)
        t0 = time.perf_counter()
        await rig.pos.complete_cash(basket, 3800)
        samples.append(time.perf_counter() - t0)
    return samples


async def run(rig: BenchRig, n: int = 500) -> dict[str, Any]:
    await gateway_completions(rig, 20)  # warm up
    gateway = summary(await gateway_completions(rig, n))
    raw = summary(raw_sqlite_commits(rig.workdir / "raw.sqlite3", n))
    return {
        "gateway_complete_sale": gateway,
        "raw_sqlite_wal_full_commit": raw,
        "ratio_p50": gateway["p50_ms"] / raw["p50_ms"],
    }
