"""``posgw-sim fleet``: many terminals' sync clients driving one ledger over HTTP.

Each simulated terminal has its own Ed25519 key (registered with the ledger),
its own gapless ``seq`` and hash chain, and sells at random; now and then it
goes offline for a spell and its records wait, then it sends them in
batches like the gateway's outbox. Every record is sent until the ledger has
answered for it, so at the end the ledger must hold exactly what the fleet
made (the fleet's terminals keep what they made, for that check).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.chain import GENESIS, canonical, seal
from protocols.errors import GatewayError
from protocols.records import RecordLine, Tender, TransactionRecord
from protocols.rulebook import members_from_wire
from protocols.sync import MAX_BATCH, SyncReply, batch_to_wire
from protocols.tokens import public_key_text
from simulators.fleet_news import FleetBroker, NewsCounts, TerminalNews, on_mqtt

MEMBERS = ("M0001", "M0002", "M0003", None, None)  # the demo mall's members, and walk-in customers


@dataclass
class FleetTerminal:
    terminal_id: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    seq: int = 0
    head: bytes = GENESIS
    made: list[TransactionRecord] = field(default_factory=list)
    outbox: list[tuple[TransactionRecord, float]] = field(default_factory=list)  # (record, made at)
    offline_until: float = 0.0
    status: dict[str, Any] = field(default_factory=lambda: {"queue_depth": 0, "offline": False})  # on MQTT

    def sell(self, rng: random.Random) -> TransactionRecord:
        self.seq += 1
        price = rng.randrange(100, 50_000)
        member = rng.choice(MEMBERS)
        draft = TransactionRecord(
            txn_id=str(uuid.uuid4()), terminal_id=self.terminal_id, seq=self.seq, kind="sale",
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), store_id="S-FLEET",
            merchant_id="M-BAKERY", currency="CNY",
            lines=(RecordLine("6901234567892", "Egg tart", "bakery", 1, price, price, 0, price),),
            total_gross=price, total_discount=0, total_due=price, tenders=(Tender("cash", price),), change=0,
            member_id=member, member_via="qr" if member else None,
            points_earned=price // 10_000 if member else 0, growth_earned=price // 100 if member else 0,
            rulebook_version=1, offline=self.offline_until > 0,
        )  # fmt: skip
        digest, signature = seal(self.head, canonical(draft.to_wire()), self.key)
        record = dataclasses.replace(draft, prev_hash=self.head.hex(), hash=digest.hex(), signature=signature.hex())
        self.head = digest
        self.made.append(record)
        self.outbox.append((record, time.monotonic()))
        self.status.update(queue_depth=len(self.outbox), offline=self.offline_until > 0)
        return record


@dataclass
class FleetResult:
    terminals: int
    records: int
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    lags: list[float] = field(default_factory=list)  # seconds from a record made to the ledger's answer
    seconds: float = 0.0
    failed_posts: int = 0  # batches that got no answer (the ledger down or restarting): sent again
    news: NewsCounts | None = None  # on MQTT: what the terminals fetched because of notices
    news_settled: float = 0.0  # seconds from the last answer until every terminal held the last member revision


async def run_fleet(
    ledger_url: str,
    token: str,
    terminals: int,
    records_each: int,
    *,
    offline_share: float = 0.2,
    seed: int = 1,
    pace_seconds: float = 0.0,
    prefix: str = "T-FLEET",
    broker: FleetBroker | None = None,
) -> tuple[FleetResult, list[FleetTerminal]]:
    """Every terminal sells ``records_each`` and syncs them all; some go offline for a while.

    With a ``broker`` the terminals are on MQTT as well (``fleet_news.py``):
    connected and holding the rules before they sell, and at the end the run
    waits until every one has heard of and fetched the last member revision.
    """
    rng = random.Random(seed)
    fleet = [FleetTerminal(f"{prefix}-{i:04d}") for i in range(terminals)]
    result = FleetResult(terminals, terminals * records_each)
    headers = {"Authorization": f"Bearer {token}"}
    limit = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(headers=headers, connector=limit) as http:
        await asyncio.gather(*(_register(http, ledger_url, t) for t in fleet))
        async with contextlib.AsyncExitStack() as stack:
            news: list[TerminalNews] = []
            if broker is not None:
                statuses = {t.terminal_id: t.status for t in fleet}
                news, result.news = await stack.enter_async_context(on_mqtt(broker, http, ledger_url, statuses))
                for n in news:
                    n.kick()  # a terminal's first refresh, as at a gateway's start
                await _until(
                    lambda: all(n.link.state.connected and n.rulebook_version >= 0 for n in news),
                    broker.within,
                    "connect to the broker and fetch the rules",
                )
            started = time.monotonic()
            await asyncio.gather(
                *(_terminal(http, ledger_url, t, records_each, rng.random() < offline_share, pace_seconds, result)
                  for t in fleet)
            )  # fmt: skip
            result.seconds = time.monotonic() - started
            if broker is not None:
                last = await _member_revision(http, ledger_url)
                await _until(
                    lambda: all(n.members_version >= last for n in news),
                    broker.within,
                    f"hear of member revision {last} (is the ledger on this broker and mall?)",
                )
                result.news_settled = time.monotonic() - started - result.seconds
    return result, fleet


class FleetError(GatewayError):
    """The fleet cannot run: its names are taken at the ledger, or its terminals got stuck (on MQTT)."""

    code = "fleet-error"


async def _until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise FleetError(f"the fleet's terminals did not all {what} within {within:.0f} s")
        await asyncio.sleep(0.05)


async def _member_revision(http: aiohttp.ClientSession, url: str) -> int:
    """The ledger's newest member revision (a delta from far ahead is empty but carries it)."""
    async with http.get(f"{url}/v1/members", params={"since": str(2**61)}) as r:
        r.raise_for_status()
        version, _ = members_from_wire((await r.json())["members"])
    return version


async def _register(http: aiohttp.ClientSession, url: str, t: FleetTerminal) -> None:
    body = {"public_key": public_key_text(t.key.public_key())}
    async with http.put(f"{url}/v1/terminals/{t.terminal_id}/key", json=body) as r:
        if r.status == 409:
            raise FleetError(
                f"{t.terminal_id} is registered at this ledger with another key (an earlier fleet?): "
                "give this fleet's terminals other names (--prefix)"
            )
        r.raise_for_status()


async def _terminal(
    http: aiohttp.ClientSession,
    url: str,
    t: FleetTerminal,
    count: int,
    goes_offline: bool,
    pace: float,
    result: FleetResult,
) -> None:
    rng = random.Random(t.terminal_id)
    offline_at = rng.randrange(count) if goes_offline else -1
    for i in range(count):
        if i == offline_at:
            t.offline_until = 1.0  # offline for a spell: what it sells now waits in its outbox
        t.sell(rng)
        if t.offline_until and i >= offline_at + max(1, count // 4):
            t.offline_until = 0.0  # back online: the backlog goes out with the next sync
        if not t.offline_until and (len(t.outbox) >= 20 or pace):
            await _sync(http, url, t, result)
        if pace:
            await asyncio.sleep(pace)
    t.offline_until = 0.0
    while t.outbox:
        await _sync(http, url, t, result)


async def _sync(http: aiohttp.ClientSession, url: str, t: FleetTerminal, result: FleetResult) -> None:
    batch = t.outbox[:MAX_BATCH]
    body = batch_to_wire(t.terminal_id, [r for r, _ in batch])
    for attempt in range(600):  # like the gateway's outbox: unanswered records are simply sent again
        try:
            async with http.post(f"{url}/v1/sync/batch", json=body) as resp:
                resp.raise_for_status()
                reply = SyncReply.from_wire(await resp.json())
            break
        except (aiohttp.ClientError, TimeoutError):
            result.failed_posts += 1
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
    else:
        return
    now = time.monotonic()
    answered = {r.txn_id: r.status for r in reply.results}
    for record, made_at in batch:
        status = answered.get(record.txn_id)
        if status is None:
            continue  # not answered: sent again with the next batch
        result.lags.append(now - made_at)
        result.accepted += status == "accepted"
        result.duplicates += status == "duplicate"
        result.rejected += status == "rejected"
    t.outbox = [(r, at) for r, at in t.outbox if r.txn_id not in answered]
    t.status.update(queue_depth=len(t.outbox), offline=t.offline_until > 0)
