"""Kill the gateway with SIGKILL at random moments during sales and drains, then count.

A "total queue" check in the manner of Jepsen: every completion the till
attempted is classified by what the till was told. After the last restart the
journal drains and the ledger's records are matched back to the attempts by
each sale's unique SKU:

* lost: acknowledged to the till, missing at the ledger;
* duplicated: one attempt, more than one record at the ledger;
* unexpected: a record at the ledger for an attempt that was confirmed *not*
  recorded, or for no attempt at all.

All three must be zero. Attempts whose outcome the till never learned (the
process died mid-request) are retried after the restart with the same
Idempotency-Key, as a POS application would: the journal answers with the
original sale, or the basket is gone and nothing was recorded.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from simulators.pos_client import ApiProblemError, PosClient
from simulators.processes import Proc, Stack


@dataclass
class Attempt:
    sku: str
    basket_id: str
    key: str
    outcome: str = "unknown"  # acked | refused | not-recorded | unknown
    txn_id: str | None = None


@dataclass
class ChaosReport:
    kills: int
    attempts: int
    acked: int
    not_recorded: int
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Network chaos (simulators/network_chaos.py): what was done to the till.
    faked: int = 0  # answers given in the ledger's place (garbage, fake "accepted", replays)
    broker_drops: int = 0
    disk_fills: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def summary(self) -> str:
        return (
            f"{self.kills} SIGKILLs, {self.attempts} completions attempted: {self.acked} acknowledged, "
            f"{self.not_recorded} confirmed not recorded; lost={len(self.lost)} duplicated={len(self.duplicated)} "
            f"unexpected={len(self.unexpected)} ({self.seconds:.0f} s)"
            + (
                f"; {self.faked} answers faked, broker dropped {self.broker_drops}×, disk filled {self.disk_fills}×"
                if self.faked or self.broker_drops or self.disk_fills
                else ""
            )
        )


async def _producer(pos: PosClient, attempts: list[Attempt], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            basket = (await pos.new_basket())["basket_id"]
            sku = f"chaos-{uuid.uuid4().hex[:12]}"
            await pos.add_line(basket, sku=sku, name="chaos", unit_price=random.randint(1, 50_000))
        except (aiohttp.ClientError, ApiProblemError, OSError):
            return
        attempt = Attempt(sku, basket, uuid.uuid4().hex)
        attempts.append(attempt)
        await _complete(pos, attempt)
        if attempt.outcome == "unknown":
            return


async def _complete(pos: PosClient, attempt: Attempt) -> None:
    try:
        sale = await pos.complete_cash(attempt.basket_id, 50_000, key=attempt.key)
    except ApiProblemError as err:
        attempt.outcome = "not-recorded" if err.status == 404 else "refused"
    except (TimeoutError, aiohttp.ClientError, OSError):
        attempt.outcome = "unknown"
    else:
        attempt.outcome, attempt.txn_id = "acked", sale["record"]["txn_id"]


async def run_chaos(workdir: Path, kills: int, producers: int = 4, seed: int | None = None) -> ChaosReport:
    rng = random.Random(seed)
    started = time.monotonic()
    stack = Stack.create(workdir)
    gateway = stack.gateway
    attempts: list[Attempt] = []
    try:
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        for _ in range(kills):
            pos = await _restart(gateway, stack, attempts)
            try:
                stop = asyncio.Event()
                tasks = [asyncio.create_task(_producer(pos, attempts, stop)) for _ in range(producers)]
                await asyncio.sleep(rng.uniform(0.0, 0.4))
                gateway.stop(signal.SIGKILL)
                stop.set()
                await asyncio.gather(*tasks)
            finally:
                await pos.close()
        pos = await _restart(gateway, stack, attempts)
        try:
            await pos.wait_status(lambda s: s["journal"]["pending"] == 0, within=120)
        finally:
            await pos.close()
        records = await _ledger_records(stack.ledger_url, stack.tokens["operator"])
    finally:
        stack.shutdown(signal.SIGKILL)
    return _judge(attempts, records, kills, time.monotonic() - started)


async def _restart(gateway: Proc, stack: Stack, attempts: list[Attempt]) -> PosClient:
    """Start the gateway again and settle every attempt whose outcome the till never heard."""
    gateway.start()
    await gateway.wait_healthy()
    pos = stack.pos()
    for attempt in [a for a in attempts if a.outcome == "unknown"]:
        await _complete(pos, attempt)
    return pos


async def _ledger_records(url: str, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{url}/v1/terminals/T-DEMO-01/transactions") as r,
    ):
        r.raise_for_status()
        records: list[dict[str, Any]] = (await r.json())["records"]
        return records


def _judge(attempts: list[Attempt], records: list[dict[str, Any]], kills: int, seconds: float) -> ChaosReport:
    at_ledger = Counter(line["sku"] for r in records for line in r["lines"])
    by_sku = {a.sku: a for a in attempts}
    report = ChaosReport(
        kills,
        len(attempts),
        sum(a.outcome == "acked" for a in attempts),
        sum(a.outcome == "not-recorded" for a in attempts),
        seconds=seconds,
    )
    for attempt in attempts:
        count = at_ledger.get(attempt.sku, 0)
        if attempt.outcome == "acked" and count == 0:
            report.lost.append(attempt.sku)
        if count > 1:
            report.duplicated.append(attempt.sku)
        if attempt.outcome in ("not-recorded", "refused") and count:
            report.unexpected.append(attempt.sku)
    report.unexpected += [sku for sku in at_ledger if sku not in by_sku]
    seqs = [r["seq"] for r in records]
    if seqs != list(range(1, len(seqs) + 1)):
        report.unexpected.append(f"ledger seqs are not 1..{len(seqs)}")
    return report
