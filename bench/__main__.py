"""``python -m bench`` (``make bench``): run every benchmark, print figures and ratios.

Results also go to ``bench/results/latest.json`` for comparing runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

from bench import (
    exactness,
    ingest_bench,
    journal_bench,
    ops_bench,
    pay_latency,
    pricing_bench,
    sale_commit,
    scan_latency,
    tap_latency,
)
from bench.environment import rig
from bench.stats import line


async def main(scans: int, sales: int, taps: int, exact_cases: int) -> dict[str, Any]:
    async with rig() as r:
        print(f"scan → WebSocket, {scans} scans (gateway and ledger as real processes, scanner on a pty)")
        scan = await scan_latency.run(r, scans)
        print(line("gateway: last byte written → scan event", scan["gateway_scan_to_ws"]))
        print(line("peer: raw pty write → read (floor)", scan["raw_pty_round_trip"]))
        print(f"  ratio p50 gateway / raw pty: {scan['ratio_p50']:.1f}×")
        print(f"\ncomplete sale (cash) through the API, {sales} sales, fsync'd journal commit included")
        sale = await sale_commit.run(r, sales)
        print(line("gateway: POST …/complete", sale["gateway_complete_sale"]))
        print(line("peer: raw SQLite WAL FULL 1-row commit", sale["raw_sqlite_wal_full_commit"]))
        print(f"  ratio p50 gateway / raw commit: {sale['ratio_p50']:.1f}×")
        print(f"\ncard tap → verified member on the WebSocket, {taps} taps (virtual card, real pcscd + vpcd)")
        tap = await tap_latency.run(r, taps)
        print(line("tap → card event with the member", tap["tap_to_member_on_ws"]))
        print(line("of which PC/SC round trips (driver)", tap["pcsc_round_trips"]))
        print(f"  PC/SC share of the p50: {tap['pcsc_share_p50']:.0%} (the rest is mostly pcscd noticing the card)")
    print("\njournal: durable appends and outbox drain (median of 3 interleaved rounds)")
    journal = await journal_bench.run()
    journal_bench.report(journal)
    print("\njournal on an emulated terminal disk: fsync 2 ms, as eMMC (bench/slow_fsync.c; 400 appends, 1 round)")
    slow_disk = await asyncio.to_thread(journal_bench.on_slow_disk, 2000, 400)
    journal_bench.report_ratios(slow_disk)
    print("\nscan-to-paid through the API against the WeChat Pay and Alipay simulators (processes), 300 each")
    pay = await pay_latency.run()
    pay_latency.report(pay)
    print("\nledger ingest (the reference ledger as a process, embedded SQLite)")
    ingest = await ingest_bench.run("sqlite")
    ingest_bench.report(ingest)
    print("\nledger ingest on PostgreSQL (asyncpg; the machine's server, a throw-away schema)")
    ingest_pg = await ingest_bench.run("postgres")
    ingest_bench.report(ingest_pg)
    print("\nledger nodes on one PostgreSQL: 2,000 terminals on one node, then on two (lock waits sampled)")
    nodes = await ingest_bench.nodes_run()
    ingest_bench.report_nodes(nodes)
    print("\nrunning the daemon: every device kind configured, payments and MQTT")
    with tempfile.TemporaryDirectory(prefix="posgw-ops-bench-") as ops_dir:
        ops = await ops_bench.run(Path(ops_dir))
    ops_bench.report(ops)
    print("\npricing, 10,000 baskets (pure function, one core)")
    pricing = pricing_bench.run()
    pricing_bench.report(pricing)
    print(f"\nexactness: {exact_cases:,} random baskets refunded in random pieces, till and ledger (every core)")
    exact = await asyncio.to_thread(exactness.run, exact_cases)
    exactness.report(exact)
    return {
        "exactness": exact,
        "pricing": pricing,
        "pay": pay,
        "ingest": ingest,
        "ingest_postgres": ingest_pg,
        "ledger_nodes": nodes,
        "ops": ops,
        "journal": journal,
        "journal_on_2ms_fsync": slow_disk,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "scan": scan,
        "sale": sale,
        "tap": tap,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--sales", type=int, default=500)
    parser.add_argument("--taps", type=int, default=200)
    parser.add_argument("--exact-cases", type=int, default=1_000_000, help="the exactness long run's baskets")
    args = parser.parse_args()
    results = asyncio.run(main(args.scans, args.sales, args.taps, args.exact_cases))
    out = Path(__file__).parent / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {out}")
