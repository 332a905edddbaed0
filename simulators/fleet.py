"""``posgw-sim fleet``: many terminals' sync clients driving one ledger over HTTP.

Each simulated terminal has its own Ed25519 key (enrolled with the ledger with
an operator's one-time code; every request it makes is signed with it),
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.backoff import Backoff
from protocols.chain import GENESIS, canonical, seal
from protocols.errors import GatewayError
from protocols.records import RecordLine, Tender, TransactionRecord
from protocols.rulebook import members_from_wire
from protocols.sync import MAX_BATCH, SyncReply, batch_to_wire
from protocols.tokens import public_key_from_text
from simulators.fleet_news import FleetBroker, NewsCounts, TerminalNews, on_mqtt
from simulators.ledger_session import SignedSession, enrol

MEMBERS = ("M0001", "M0002", "M0003", None, None)  # the demo mall's members, and walk-in customers


STORE, MERCHANT = "S-FLEET", "M-BAKERY"  # what the fleet's terminals are enrolled for


@dataclass
class FleetTerminal:
    terminal_id: str
    code: str = ""  # the operator's enrolment code for it
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    session: SignedSession | None = None
    seq: int = 0
    head: bytes = GENESIS
    made: list[TransactionRecord] = field(default_factory=list)
    sold_at: list[float] = field(default_factory=list)  # when each of ``made`` was sold (monotonic seconds)
    outbox: list[tuple[TransactionRecord, float]] = field(default_factory=list)  # (record, made at)
    offline_until: float = 0.0
    status: dict[str, Any] = field(default_factory=lambda: {"queue_depth": 0, "offline": False})  # on MQTT
    members: Sequence[str | None] = MEMBERS  # whom its sales are for (None: a walk-in customer)

    def sell(self, rng: random.Random) -> TransactionRecord:
        self.seq += 1
        price = rng.randrange(100, 50_000)
        member = rng.choice(self.members)
        draft = TransactionRecord(
            txn_id=str(uuid.uuid4()), terminal_id=self.terminal_id, seq=self.seq, kind="sale",
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), store_id=STORE,
            merchant_id=MERCHANT, currency="CNY",
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
        self.sold_at.append(now := time.monotonic())
        self.outbox.append((record, now))
        self.status.update(queue_depth=len(self.outbox), offline=self.offline_until > 0)
        return record


@dataclass
class FleetResult:
    terminals: int
    records: int
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0
    lags: list[float] = field(default_factory=list)  # seconds from a record made to the ledger's answer
    seconds: float = 0.0
    failed_posts: int = 0  # batches that got no answer (the ledger down or restarting): sent again
    news: NewsCounts | None = None  # on MQTT: what the terminals fetched because of notices
    news_settled: float = 0.0  # seconds from the last answer until every terminal held the last member revision


async def run_fleet(
    ledger_url: str | Sequence[str],
    codes: Mapping[str, str],
    records_each: int,
    *,
    offline_share: float = 0.2,
    seed: int = 1,
    pace_seconds: float = 0.0,
    broker: FleetBroker | None = None,
    enrolled: asyncio.Event | None = None,
    members: Sequence[str | None] = MEMBERS,
) -> tuple[FleetResult, list[FleetTerminal]]:
    """Every terminal (``codes``: terminal id → its enrolment code) enrols, sells ``records_each`` and
    syncs them all; some go offline for a while. Several ledger URLs (nodes of one ledger behind no
    load balancer) share the terminals out, one each in turn.

    With a ``broker`` the terminals are on MQTT as well (``fleet_news.py``):
    connected and holding the rules before they sell, and at the end the run
    waits until every one has heard of and fetched the last member revision.
    ``enrolled`` is set once every terminal has enrolled and selling starts;
    ``members``: whom the sales are for (the demo mall's three, and walk-ins). With ``pace_seconds``
    each terminal sells on its own clock, one sale an interval from a random start within the first.
    """
    rng = random.Random(seed)
    fleet = [FleetTerminal(terminal_id, code, members=members) for terminal_id, code in sorted(codes.items())]
    result = FleetResult(len(fleet), len(fleet) * records_each)
    urls = [ledger_url] if isinstance(ledger_url, str) else list(ledger_url)
    async with contextlib.AsyncExitStack() as clients:
        # A client (and 64 connections) per node, as each node's load balancer sees its own share: one pool
        # for all would keep idle connections to one node while requests for another wait.
        https = [
            await clients.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)))
            for _ in urls
        ]
        await asyncio.gather(*(_enrol(https[i % len(urls)], urls[i % len(urls)], t) for i, t in enumerate(fleet)))
        if enrolled is not None:
            enrolled.set()
        async with contextlib.AsyncExitStack() as stack:
            news: list[TerminalNews] = []
            if broker is not None:
                statuses = {t.terminal_id: t.status for t in fleet}
                sessions = {t.terminal_id: t.session for t in fleet if t.session is not None}
                news, result.news = await stack.enter_async_context(on_mqtt(broker, sessions, statuses))
                for n in news:
                    n.kick()  # a terminal's first refresh, as at a gateway's start
                await _until(
                    lambda: all(n.connected and n.rulebook_version >= 0 for n in news),
                    broker.within,
                    "connect to the broker and fetch the rules",
                )
            started = time.monotonic()
            await asyncio.gather(
                *(_terminal(t, records_each, rng.random() < offline_share, pace_seconds, result) for t in fleet)
            )
            result.seconds = time.monotonic() - started
            if broker is not None:
                last = await _member_revision(fleet[0])
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


async def _member_revision(t: FleetTerminal) -> int:
    """The ledger's newest member revision (a delta from far ahead is empty but carries it)."""
    assert t.session is not None
    status, body = await t.session.request("GET", "/v1/members", params={"since": str(2**61)})
    if status != 200:
        raise FleetError(f"the ledger answered {status} for the member revision")
    return members_from_wire(body["members"]).version


async def _enrol(http: aiohttp.ClientSession, url: str, t: FleetTerminal) -> None:
    backoff = Backoff(base=0.2, cap=2.0)
    status, answer = await enrol(http, url, t.terminal_id, t.key, t.code)
    for _ in range(15):  # 503: the ledger's database did not answer (nothing was done); an installer tries again
        if status != 503:
            break
        await asyncio.sleep(backoff.next_delay())
        status, answer = await enrol(http, url, t.terminal_id, t.key, t.code)
    if status != 201:
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        raise FleetError(f"{t.terminal_id} could not enrol ({status}): {detail}")
    keys = answer.get("issuer_keys") if isinstance(answer, dict) else None
    if not isinstance(keys, dict) or not keys:
        raise FleetError(f"{t.terminal_id}: the enrolment answer names no ledger key")
    t.session = SignedSession(http, url, t.terminal_id, t.key, public_key_from_text(str(next(iter(keys.values())))))


async def _terminal(
    t: FleetTerminal,
    count: int,
    goes_offline: bool,
    pace: float,
    result: FleetResult,
) -> None:
    rng = random.Random(t.terminal_id)
    offline_at = rng.randrange(count) if goes_offline else -1
    # Paced, a till sells on its own clock: the first sale somewhere in the first interval, then one each
    # interval however long the last sync took (customers do not wait for the ledger). All starting at once
    # and pausing after each answer, the fleet would sell in waves: a burst every interval, not a steady state.
    loop = asyncio.get_running_loop()
    start = loop.time() + rng.uniform(0, pace)
    for i in range(count):
        if pace:
            await asyncio.sleep(max(0.0, start + i * pace - loop.time()))
        if i == offline_at:
            t.offline_until = 1.0  # offline for a spell: what it sells now waits in its outbox
        t.sell(rng)
        if t.offline_until and i >= offline_at + max(1, count // 4):
            t.offline_until = 0.0  # back online: the backlog goes out with the next sync
        if not t.offline_until and (len(t.outbox) >= 20 or pace):
            await _sync(t, result)
    t.offline_until = 0.0
    while t.outbox:
        await _sync(t, result)


async def _sync(t: FleetTerminal, result: FleetResult) -> None:
    assert t.session is not None
    batch = t.outbox[:MAX_BATCH]
    body = batch_to_wire(t.terminal_id, [r for r, _ in batch])
    for attempt in range(600):  # like the gateway's outbox: unanswered records are simply sent again
        try:
            code, answer = await t.session.request("POST", "/v1/sync/batch", body)
        except (aiohttp.ClientError, TimeoutError):
            code, answer = 0, None
        if code == 200:
            reply = SyncReply.from_wire(answer)
            break
        if 400 <= code < 500:  # refused, not unavailable: the fleet is wrong, not the ledger away
            raise FleetError(f"{t.terminal_id}: the ledger answered {code} to a batch: {str(answer)[:300]}")
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
        result.quarantined += status == "quarantined"
    t.outbox = [(r, at) for r, at in t.outbox if r.txn_id not in answered]
    t.status.update(queue_depth=len(t.outbox), offline=t.offline_until > 0)
