"""What running the daemon costs: start-to-ready, idle memory, and a metrics scrape while sales run.

The gateway runs as a process with every kind of device configured (a
scanner on a pty, the PC/SC card reader, the bank-card terminal on a pty),
payments to an acquirer and MQTT to the local broker. Measured:

* start-to-ready: from starting the process to ``/readyz`` answering 200;
* idle RSS (``VmRSS``) a few seconds after ready;
* ``GET /metrics`` latency while a client completes sales back to back,
  beside ``GET /healthz`` in the same run (the cheapest answer the daemon gives).

Targets (from the operations issue): under 60 MB RSS; ready in under 1.5 s.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.stats import summary
from simulators.processes import Stack, payments_table
from simulators.terminal import PtyTerminal


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def ready_after(url: str, started: float, within: float = 30.0) -> float:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while time.perf_counter() - started < within:
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise TimeoutError("the daemon did not become ready")


async def timed_gets(url: str, n: int) -> list[float]:
    samples = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            t0 = time.perf_counter()
            async with http.get(url) as r:
                await r.read()
            samples.append(time.perf_counter() - t0)
    return samples


async def run(workdir: Path, scrapes: int = 200) -> dict[str, Any]:
    terminal = PtyTerminal(workdir / "terminal")
    terminal.plug()
    extra = payments_table("http://127.0.0.1:9", terminal=terminal.link)
    extra += '\n[mqtt]\nhost = "127.0.0.1"\nmall = "bench"\n'
    stack = Stack.create(workdir, card_reader=True, extra_config=extra)
    try:
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        started = time.perf_counter()
        stack.gateway.start()
        ready = await ready_after(f"http://127.0.0.1:{stack.api_port}/readyz", started)
        await asyncio.sleep(3.0)  # idle: drivers open, rules loaded, MQTT connected
        assert stack.gateway.popen is not None
        rss = rss_mb(stack.gateway.popen.pid)
        async with stack.pos() as pos:
            selling = asyncio.create_task(_sell(pos))
            metrics = summary(await timed_gets(f"http://127.0.0.1:{stack.api_port}/metrics", scrapes))
            health = summary(await timed_gets(f"http://127.0.0.1:{stack.api_port}/healthz", scrapes))
            selling.cancel()
    finally:
        stack.shutdown()
        terminal.unplug()
    return {
        "start_to_ready_s": ready,
        "idle_rss_mb": rss,
        "metrics_scrape": metrics,
        "healthz": health,
        "ratio_p50": metrics["p50_ms"] / health["p50_ms"],
    }


async def _sell(pos: Any) -> None:
    while True:
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="6901234567892", unit_price=1000)
        await pos.complete_cash(basket, 1000)


def report(r: dict[str, Any]) -> None:
    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    ready, rss, ratio = r["start_to_ready_s"], r["idle_rss_mb"], r["ratio_p50"]
    m, h = r["metrics_scrape"], r["healthz"]
    print(f"  start to ready (/readyz 200)      {ready:6.2f} s   ({verdict(ready < 1.5)} < 1.5 s)")
    print(f"  idle RSS                         {rss:6.1f} MB  ({verdict(rss < 60)} < 60 MB)")
    print(f"  GET /metrics while selling       p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms")
    print(f"  peer: GET /healthz, same run     p50 {h['p50_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms  → {ratio:.1f}×")
