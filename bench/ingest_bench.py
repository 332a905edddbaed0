"""The ledger's ingest: a terminal's backlog and a fleet, beside a plain load of the same rows.

In one run, with the reference ledger as a real process, on each engine
(embedded SQLite, then the machine's PostgreSQL in a throw-away schema):

* one terminal sends a backlog of 50,000 signed records in batches of 200
  (every record's signature and chain checked, points posted);
* a fleet of 500 terminals sells and syncs at once (``simulators/fleet.py``),
  with the lag from a record made to the ledger's answer: a burst (all
  records made at once, 20 % of terminals with an offline spell), then a
  steady state (each terminal selling and syncing on its own clock every
  0.5 s, its first sale at a random moment of the first interval: offered
  1,000 records/s whatever the answers take);
* the steady state again with every terminal on MQTT as gateways are
  (``simulators/fleet_news.py``): status with a last will, and a paced
  refresh over HTTP whenever the ledger announces a member revision;
* the peer, the engine's limit for the same rows: on SQLite, inserted straight
  into the same table layout in one transaction per 200 rows, WAL with
  ``synchronous=FULL``; on PostgreSQL, a plain asyncpg ``COPY`` of 200 rows a
  transaction into the ledger's own ``transactions`` table layout.

And on PostgreSQL, the burst and the steady state again on one node of two worker processes
(``serve --workers 2``, one port), and several nodes (``nodes_run``): 2,000 terminals selling over one
node, then two, with the share of the nodes' sessions waiting for a lock.

The ledger's own CPU for the backlog and the steady fleet is reported a record (from ``/proc``): the
figure that says how far a change moved the ledger, whatever the load generator and PostgreSQL take of the
same machine.

Targets (the mall-group scale issue): the backlog at least 0.3× the peer of
the same run; the burst's p99 lag under 1 s on both engines; the steady state
on PostgreSQL under 300 ms; 2,000 terminals on two nodes under 1 s, with at
most 10 % of the nodes' sessions waiting for a lock.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import machine
from bench.stats import summary
from ledger import terminals
from ledger.postgres_database import APPLICATION
from ledger.secrets import KEY_ENV, new_secrets_key
from ledger.store import LedgerStore
from protocols.rulebook import MemberEntry
from protocols.sync import MAX_BATCH, batch_to_wire
from simulators import fleet
from simulators.fleet import FleetTerminal, run_fleet
from simulators.fleet_news import FleetBroker, quiet_links
from simulators.ledger_session import SignedSession, enrol
from simulators.postgres import POSTGRES_URL, fresh_schema
from simulators.processes import Proc, demo_env, free_port, ledger_proc


def cpu_seconds(proc: Proc) -> float:
    """The ledger process's own CPU so far (``bench/machine.py``)."""
    return machine.process_cpu(_pid(proc))


def _pid(proc: Proc) -> int:
    assert proc.popen is not None
    return proc.popen.pid


async def _first(event: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Until ``event`` is set, or ``task`` ended first (its error then raised here)."""
    waiting = asyncio.create_task(event.wait())
    await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not event.is_set():
        task.result()


def plain_inserts(path: Path, rows: list[tuple[str, str, int, str]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE transactions (txn_id TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "body TEXT NOT NULL, UNIQUE (terminal_id, seq))"
    )
    t0 = time.perf_counter()
    for i in range(0, len(rows), MAX_BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?)", rows[i : i + MAX_BATCH])
        conn.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - t0)
    conn.close()
    return rate


PACE = 0.5  # seconds between one terminal's sales in the steady-state fleet
BROKER = ("127.0.0.1", 1883)  # the machine's Mosquitto
COPY_COLUMNS = ["txn_id", "terminal_id", "seq", "body", "received_at"]


async def plain_copy(url: str, rows: list[tuple[str, str, int, str]]) -> float:
    """The same rows by ``COPY`` into a table laid out as the ledger's, 200 a transaction."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE plain_transactions (txn_id TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, "
            "seq BIGINT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL, UNIQUE (terminal_id, seq))"
        )
        now = "2026-11-24T00:00:00+00:00"
        t0 = time.perf_counter()
        for i in range(0, len(rows), MAX_BATCH):
            async with conn.transaction():
                part = [(*row, now) for row in rows[i : i + MAX_BATCH]]
                await conn.copy_records_to_table("plain_transactions", records=part, columns=COPY_COLUMNS)
        return len(rows) / (time.perf_counter() - t0)
    finally:
        await conn.close()


async def codes(data: Path, database: str | None, prefix: str, count: int) -> dict[str, str]:
    """The operator's enrolment codes for ``count`` terminals (``posgw-ledger terminal add PREFIX --count N``)."""
    store = await LedgerStore.open(data, database)
    try:
        return await store.db.write(
            lambda tx: terminals.add_many(tx, prefix, count, fleet.STORE, fleet.MERCHANT, "bench")
        )
    finally:
        await store.close()


async def backlog(url: str, code: str, n: int) -> tuple[float, list[tuple[str, str, int, str]]]:
    terminal = FleetTerminal("T-BACKLOG-0000", code)
    rng = random.Random(7)
    records = [terminal.sell(rng) for _ in range(n)]
    async with aiohttp.ClientSession() as http:
        status, answer = await enrol(http, url, terminal.terminal_id, terminal.key, code)
        assert status == 201, answer
        session = SignedSession(http, url, terminal.terminal_id, terminal.key)
        batches = [
            json.dumps(batch_to_wire(terminal.terminal_id, records[i : i + MAX_BATCH])).encode()
            for i in range(0, n, MAX_BATCH)
        ]
        t0 = time.perf_counter()
        for payload in batches:
            status, reply = await session.request("POST", "/v1/sync/batch", raw=payload)
            assert status == 200, reply
        rate = n / (time.perf_counter() - t0)
    rows = [(r.txn_id, r.terminal_id, r.seq, json.dumps(r.to_wire())) for r in records]
    return rate, rows


async def backlog_checking_every_signature(work: Path, database: str | None, n: int) -> float:
    """The same backlog at a ledger that checks each record's own signature (in worker processes), the peer
    of the default check (every hash link, one signature vouching for a run)."""
    tokens = [secrets.token_urlsafe(24) for _ in range(3)]
    port, data = free_port(), work / "every"
    env = {**demo_env(*tokens), "POSGW_LEDGER_SEAL_CHECK": "every"}
    if database:  # a schema of its own: the main ledger's terminals and records stay apart
        async with fresh_schema("bench_every_") as url:
            return await _backlog_at(
                ledger_proc(data, port, env, work / "every.log", ("--database", url)), port, data, url, n
            )
    return await _backlog_at(ledger_proc(data, port, env, work / "every.log"), port, data, None, n)


async def _backlog_at(ledger: Proc, port: int, data: Path, database: str | None, n: int) -> float:
    ledger.start()
    try:
        await ledger.wait_healthy()
        (code,) = (await codes(data, database, "T-BACKLOG", 1)).values()
        rate, _ = await backlog(f"http://127.0.0.1:{port}", code, n)
        return rate
    finally:
        ledger.stop()


async def run(
    engine: str = "sqlite", backlog_n: int = 50_000, terminals: int = 500, records_each: int = 20
) -> dict[str, Any]:
    """One engine's figures: ``sqlite`` (the default) or ``postgres``."""
    work = Path(tempfile.mkdtemp(prefix="posgw-ingest-bench-"))
    try:
        if engine == "postgres":
            async with fresh_schema("bench_") as url:
                return await _run(work, engine, url, backlog_n, terminals, records_each)
        return await _run(work, engine, None, backlog_n, terminals, records_each)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _run(
    work: Path, engine: str, database: str | None, backlog_n: int, terminals: int, records_each: int
) -> dict[str, Any]:
    tokens = [secrets.token_urlsafe(24) for _ in range(3)]
    port = free_port()
    mall = f"bench-{secrets.token_hex(4)}"
    extra = ("--mqtt", f"{BROKER[0]}:{BROKER[1]}", "--mall", mall, *(("--database", database) if database else ()))
    ledger = ledger_proc(work / "ledger", port, demo_env(*tokens), work / "ledger.log", extra)
    url = f"http://127.0.0.1:{port}"
    try:
        ledger.start()
        await ledger.wait_healthy()
        data = work / "ledger"
        (code,) = (await codes(data, database, "T-BACKLOG", 1)).values()
        spent = cpu_seconds(ledger)
        backlog_rate, rows = await backlog(url, code, backlog_n)
        backlog_cpu = cpu_seconds(ledger) - spent
        if database:
            plain_rate = await plain_copy(database, rows)
        else:
            plain_rate = plain_inserts(work / "plain.sqlite3", rows)
        every_rate = await backlog_checking_every_signature(work, database, backlog_n)
        burst, _ = await run_fleet(url, await codes(data, database, "T-FLEET", terminals), records_each)
        # Steady state: every terminal sells and syncs every PACE seconds, none offline.
        steady = await codes(data, database, "T-STEADY", terminals)
        selling = asyncio.Event()
        fleet_run = asyncio.create_task(
            run_fleet(url, steady, 10, offline_share=0.0, pace_seconds=PACE, enrolled=selling)
        )
        await _first(selling, fleet_run)
        spent = cpu_seconds(ledger)  # once every till has enrolled (an enrolment checks a slow code hash)
        (paced, _), paced_machine = await machine.during([_pid(ledger)], fleet_run)
        paced_cpu = cpu_seconds(ledger) - spent
        quiet_links()
        on_mqtt, _ = await run_fleet(
            url, await codes(data, database, "T-MQTT", terminals), 10, offline_share=0.0, pace_seconds=PACE,
            broker=FleetBroker(*BROKER, mall),
        )  # fmt: skip
        assert on_mqtt.news is not None
    finally:
        ledger.stop()
    workers = await on_workers(work, terminals, records_each) if database else None
    lag = summary(burst.lags)
    return {
        "on_workers": workers,
        "engine": engine,
        "backlog_records": backlog_n,
        "backlog_ingest_per_s": backlog_rate,
        "backlog_cpu_us_per_record": backlog_cpu / backlog_n * 1e6,
        "backlog_every_signature_per_s": every_rate,
        "plain_insert_per_s": plain_rate,
        "ratio_vs_plain_insert": backlog_rate / plain_rate,
        "fleet_terminals": terminals,
        "fleet_records": burst.records,
        "fleet_ingest_per_s": burst.records / burst.seconds,
        "fleet_lag": lag,
        "paced_per_s": paced.records / paced.seconds,
        "paced_lag": summary(paced.lags),
        "paced_cpu_us_per_record": paced_cpu / paced.records * 1e6,
        "paced_machine": paced_machine,
        "mqtt_per_s": on_mqtt.records / on_mqtt.seconds,
        "mqtt_lag": summary(on_mqtt.lags),
        "mqtt_refreshes_per_s": on_mqtt.news.refreshes / (on_mqtt.seconds + on_mqtt.news_settled),
        "mqtt_refresh": summary(on_mqtt.news.refresh_seconds),
        "mqtt_settled_s": on_mqtt.news_settled,
        "fleet_rejected": burst.rejected,
    }


WORKERS = 2


async def on_workers(work: Path, terminals: int, records_each: int) -> dict[str, Any]:
    """The burst and the steady state at one node of ``WORKERS`` processes on one port (PostgreSQL)."""
    tokens = [secrets.token_urlsafe(24) for _ in range(3)]
    env = {**demo_env(*tokens), KEY_ENV: new_secrets_key()}
    port = free_port()
    async with fresh_schema("bench_workers_") as url:
        extra = ("--database", url, "--workers", str(WORKERS))
        ledger = ledger_proc(work / "workers", port, env, work / "workers.log", extra)
        ledger.start()
        try:
            await ledger.wait_healthy()
            burst, _ = await run_fleet(
                f"http://127.0.0.1:{port}", await codes(work / "workers", url, "T-FLEET", terminals), records_each
            )
            steady = await codes(work / "workers", url, "T-STEADY", terminals)
            selling = asyncio.Event()
            at = f"http://127.0.0.1:{port}"
            fleet_run = asyncio.create_task(
                run_fleet(at, steady, 10, offline_share=0.0, pace_seconds=PACE, enrolled=selling)
            )
            await _first(selling, fleet_run)
            # The supervisor: its workers, its children, are the ledger too.
            (paced, _), paced_machine = await machine.during([_pid(ledger)], fleet_run)
        finally:
            ledger.stop()
    return {"workers": WORKERS, "burst_lag": summary(burst.lags), "paced_per_s": paced.records / paced.seconds,
            "paced_lag": summary(paced.lags), "paced_machine": paced_machine}  # fmt: skip


NODES_PACE = 2.0  # seconds between one terminal's sales when 2,000 sell at once (offered ≈ 1,000 records/s)
NODES_MEMBERS = 20_000  # a mall group's members shop everywhere: the sales are spread over this many


async def seed_members(data: Path, database: str, count: int) -> list[str | None]:
    """``count`` classic members in the books; the fleet's customers: each of them, or a walk-in (2 in 5)."""
    store = await LedgerStore.open(data, database)
    try:
        ids = [f"B{i:06d}" for i in range(count)]
        await store.members.upsert([MemberEntry(m, "classic") for m in ids])
    finally:
        await store.close()
    return [*ids, *([None] * (count * 2 // 3))]


async def lock_waits(stop: asyncio.Event, samples: list[tuple[int, int]], selling: asyncio.Event) -> None:
    """Sample the ledger nodes' sessions every 20 ms once the fleet sells (enrolments are plain writes, one at
    a time by design): (active, waiting for a lock) — the share that waits."""
    conn = await asyncpg.connect(POSTGRES_URL)
    await selling.wait()
    try:
        while not stop.is_set():
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE state = 'active'), "
                "count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') "
                "FROM pg_stat_activity WHERE application_name = $1",
                APPLICATION,
            )
            if row is not None and row[0]:
                samples.append((int(row[0]), int(row[1])))
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def on_nodes(count: int, terminals: int, records_each: int, pace: float) -> dict[str, Any]:
    """``terminals`` each selling on its own clock every ``pace`` s over ``count`` ledger nodes on one schema."""
    work = Path(tempfile.mkdtemp(prefix="posgw-nodes-bench-"))
    env = {**demo_env(*(secrets.token_urlsafe(24) for _ in range(3))), KEY_ENV: new_secrets_key()}
    try:
        async with fresh_schema("bench_nodes_") as url:
            ports = [free_port() for _ in range(count)]
            nodes = [
                ledger_proc(work / f"n{i}", port, env, work / f"n{i}.log", ("--database", url, "--audit-every", "0"))
                for i, port in enumerate(ports)
            ]
            try:
                nodes[0].start()
                await nodes[0].wait_healthy()
                for node in nodes[1:]:
                    node.start()
                    await node.wait_healthy()
                codes_for = await codes(work / "n0", url, "T-NODES", terminals)
                customers = await seed_members(work / "n0", url, NODES_MEMBERS)
                stop, samples, selling = asyncio.Event(), list[tuple[int, int]](), asyncio.Event()
                sampler = asyncio.create_task(lock_waits(stop, samples, selling))
                fleet_run = asyncio.create_task(run_fleet(
                    [f"http://127.0.0.1:{p}" for p in ports], codes_for, records_each,
                    offline_share=0.0, pace_seconds=pace, members=customers, enrolled=selling,
                ))  # fmt: skip
                await _first(selling, fleet_run)
                (result, _), used = await machine.during([_pid(node) for node in nodes], fleet_run)
                stop.set()
                await sampler
            finally:
                for node in nodes:
                    node.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    active = sum(a for a, _ in samples)
    return {
        "nodes": count,
        "terminals": terminals,
        "records": result.records,
        "per_s": result.records / result.seconds,
        "lag": summary(result.lags),
        "lock_wait_share": (sum(w for _, w in samples) / active) if active else 0.0,
        "failed_posts": result.failed_posts,  # answered 5xx or not at all, and sent again
        "machine": used,
    }


async def nodes_run(terminals: int = 2_000, records_each: int = 5, pace: float = NODES_PACE) -> dict[str, Any]:
    """Two ledger nodes against one, the same fleet, each on a fresh schema of the machine's PostgreSQL."""
    return {
        "one": await on_nodes(1, terminals, records_each, pace),
        "two": await on_nodes(2, terminals, records_each, pace),
    }


def report_nodes(r: dict[str, Any]) -> None:
    for name in ("one", "two"):
        n = r[name]
        lag = n["lag"]
        verdict = "meets" if lag["p99_ms"] < 1000 else "MISSES"
        share = n["lock_wait_share"]
        print(
            f"  {n['terminals']:,} terminals every {NODES_PACE:g} s on {n['nodes']} node(s): {n['per_s']:8,.0f} /s, "
            f"lag p50 {lag['p50_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms ({verdict} p99 < 1 s); "
            f"sessions waiting for a lock {share:.1%} ({'meets' if share <= 0.1 else 'MISSES'} ≤ 10 %); "
            f"{n['failed_posts']} posts sent again"
        )
        print(f"    the machine meanwhile: {machine.line(n['machine'])}")
    print(f"  two nodes / one: {r['two']['per_s'] / max(r['one']['per_s'], 1e-9):.2f}× the records a second")


def report(r: dict[str, Any]) -> None:
    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    rate, plain, lag = r["backlog_ingest_per_s"], r["plain_insert_per_s"], r["fleet_lag"]
    backlog = f"one terminal, {r['backlog_records']:,} backlog (signatures, chain, postings)"
    ratio = r["ratio_vs_plain_insert"]
    print(f"  {backlog} {rate:10,.0f} /s  (the ledger's CPU: {r['backlog_cpu_us_per_record']:,.0f} µs a record)")
    peer = (
        "plain asyncpg COPY of the same rows" if r["engine"] == "postgres" else "plain SQLite insert of the same rows"
    )
    print(f"  peer: {peer}, 200 a commit {plain:10,.0f} /s  → ledger {ratio:.2f}× ({verdict(ratio >= 0.3)} ≥ 0.3×)")
    every = r["backlog_every_signature_per_s"]
    print(
        f"  the same backlog checking every record's own signature {every:10,.0f} /s"
        f"  → the chain's check {rate / every:.2f}×"
    )
    fleet = f"fleet of {r['fleet_terminals']} terminals, {r['fleet_records']:,} records"
    print(f"  {fleet} {r['fleet_ingest_per_s']:10,.0f} /s")
    p50, p99 = lag["p50_ms"], lag["p99_ms"]
    print(f"  fleet lag, made → answered  p50 {p50:.0f} ms, p99 {p99:.0f} ms  ({verdict(p99 < 1000)} p99 < 1 s)")
    steady = f"steady: {r['fleet_terminals']} terminals each selling on its own clock every {PACE} s"
    paced = r["paced_lag"]
    target = f" ({verdict(paced['p99_ms'] < 300)} p99 < 300 ms)" if r["engine"] == "postgres" else ""
    lags = f"lag p50 {paced['p50_ms']:.0f} ms, p99 {paced['p99_ms']:.0f} ms"
    print(f"  {steady} {r['paced_per_s']:8,.0f} /s, {lags}{target}")
    print(
        f"    the ledger's CPU once the tills sell: {r['paced_cpu_us_per_record']:,.0f} µs a record (each its own "
        "signed request; less per request the busier the ledger, as wake-ups are shared)"
    )
    print(f"    the machine meanwhile: {machine.line(r['paced_machine'])}")
    mqtt = r["mqtt_lag"]
    print(
        f"  the same, every terminal on MQTT too {r['mqtt_per_s']:8,.0f} /s, lag p50 {mqtt['p50_ms']:.0f} ms, "
        f"p99 {mqtt['p99_ms']:.0f} ms; {r['mqtt_refreshes_per_s']:,.0f} refreshes/s on news "
        f"(p50 {r['mqtt_refresh']['p50_ms']:.0f} ms), every terminal current {r['mqtt_settled_s']:.1f} s after the last"
    )
    if (w := r["on_workers"]) is not None:
        burst, paced = w["burst_lag"], w["paced_lag"]
        print(
            f"  on one node of {w['workers']} worker processes (serve --workers): burst p99 {burst['p99_ms']:.0f} ms "
            f"({verdict(burst['p99_ms'] < 1000)} p99 < 1 s); steady {w['paced_per_s']:,.0f} /s, "
            f"p99 {paced['p99_ms']:.0f} ms ({verdict(paced['p99_ms'] < 300)} p99 < 300 ms)"
        )
        print(f"    the machine meanwhile: {machine.line(w['paced_machine'])}")


if __name__ == "__main__":
    for name in ("sqlite", "postgres"):
        print(name)
        report(asyncio.run(run(name)))
    print("ledger nodes on PostgreSQL")
    report_nodes(asyncio.run(nodes_run()))
