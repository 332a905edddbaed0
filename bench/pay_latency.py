"""Scan-to-paid latency over the local API, beside the provider's own round trip.

Two acquirer simulators run as processes: one answering at once, one adding
50 ms to every answer (a provider across the internet). The gateway sends
WeChat codes to the first and Alipay codes to the second. Each sample is one
``POST /v1/baskets/{id}/payments`` answered ``paid`` (intent fsync'd, the
provider called, the outcome fsync'd); the peer is the same ``pay`` call made
straight to the same acquirer from this process. Their difference is the
gateway's own overhead.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.stats import line, summary
from simulators.processes import Proc, Stack, demo_env, free_port

WECHAT, ALIPAY = "1345678901234567", "2845678901234567"
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 3800}


def acquirer_proc(workdir: Path, latency_ms: float) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "simulators.cli", "acquirer", "--port", str(port), "--latency-ms", str(latency_ms)]
    url = f"http://127.0.0.1:{port}"
    proc = Proc(f"acquirer-{latency_ms:g}ms", argv, demo_env("x", "y", "z"), workdir / "acquirer.log", url + "/books")
    return proc, url


def providers(fast: str, slow: str) -> str:
    table = "\n[payments]\ndeadline = 30\n"
    for wallet, url in (("wechat", fast), ("alipay", slow)):
        table += (
            f'\n[[payments.providers]]\nwallet = "{wallet}"\nprovider = "micropay-http"\n'
            f'[payments.providers.options]\nurl = "{url}"\ntimeout = 5.0\n'
        )
    return table


async def through_gateway(stack: Stack, prefix: str, n: int) -> list[float]:
    samples = []
    async with stack.pos() as pos:
        for _ in range(n):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, **TART)
            t0 = time.perf_counter()
            paid = await pos.pay(basket, prefix + "00")
            samples.append(time.perf_counter() - t0)
            assert paid["payment"]["state"] == "paid", paid
            await pos.complete(basket)
    return samples


async def straight_to_provider(url: str, n: int) -> list[float]:
    samples = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            body = {"ref": uuid.uuid4().hex, "code": WECHAT + "00", "amount": 3800}
            t0 = time.perf_counter()
            async with http.post(f"{url}/pay", json=body) as resp:
                assert (await resp.json())["result"] == "success"
            samples.append(time.perf_counter() - t0)
    return samples


async def run(n: int = 300) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="posgw-pay-bench-"))
    (fast, fast_url), (slow, slow_url) = acquirer_proc(workdir / "a0", 0), acquirer_proc(workdir / "a50", 50)
    stack = Stack.create(workdir, extra_config=providers(fast_url, slow_url))
    try:
        for proc in (fast, slow, stack.ledger, stack.gateway):
            proc.start()
            await proc.wait_healthy()
        results: dict[str, Any] = {}
        for name, prefix, url in (("0ms", WECHAT, fast_url), ("50ms", ALIPAY, slow_url)):
            await through_gateway(stack, prefix, 10)  # warm up
            gateway = summary(await through_gateway(stack, prefix, n))
            direct = summary(await straight_to_provider(url, n))
            results[name] = {
                "gateway_scan_to_paid": gateway,
                "provider_pay_round_trip": direct,
                "overhead_p50_ms": gateway["p50_ms"] - direct["p50_ms"],
                "overhead_p99_ms": gateway["p99_ms"] - direct["p99_ms"],
            }
        return results
    finally:
        stack.shutdown()
        fast.stop()
        slow.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(r: dict[str, Any]) -> None:
    for name, label in (("0ms", "provider answering at once"), ("50ms", "provider 50 ms away")):
        x = r[name]
        print(f"  {label}:")
        print(line("  gateway: POST …/payments → paid", x["gateway_scan_to_paid"]))
        print(line("  peer: the same pay call, straight", x["provider_pay_round_trip"]))
        print(f"    gateway's own overhead: p50 {x['overhead_p50_ms']:.2f} ms, p99 {x['overhead_p99_ms']:.2f} ms")


if __name__ == "__main__":
    import asyncio

    report(asyncio.run(run()))
