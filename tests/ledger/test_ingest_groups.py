"""Batches that arrive together share one transaction; one that cannot be applied costs the others nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.database import Tx
from ledger.group_writer import GroupWriter, _Waiting, lock_keys
from ledger.ingest import YIELD_EVERY, batches
from protocols.sync import SyncReply
from tests.gateway.records import draft
from tests.harness import books, sealed

pytestmark = [pytest.mark.ledger]


async def test_a_batch_that_cannot_be_applied_leaves_the_others_of_its_group_applied(
    tmp_path: Path, ledger_database: str | None
) -> None:
    store = await books(tmp_path, ledger_database)
    try:
        good = {t: sealed([draft(t, 1000), draft(t, 2000)]) for t in ("T-A", "T-C")}
        # A seq no database column holds: this batch fails inside the shared transaction.
        poison = sealed([draft("T-B", 1000)])
        poison = [dataclasses.replace(poison[0], seq=2**64)]
        answers = await asyncio.gather(
            store.ingest("T-A", good["T-A"], [None, None]),
            store.ingest("T-B", poison, [None]),
            store.ingest("T-C", good["T-C"], [None, None]),
            return_exceptions=True,
        )
        a, b, c = answers
        assert isinstance(a, SyncReply)
        assert isinstance(c, SyncReply)
        assert [r.status for r in (*a.results, *c.results)] == ["accepted"] * 4
        assert (a.high_seq, c.high_seq) == (2, 2)
        assert isinstance(b, Exception)  # the caller answers 500 and the terminal sends it again
        assert [r["seq"] for r in await store.reports.terminal_records("T-A")] == [1, 2]  # applied once, not twice
        assert await store.reports.terminal_records("T-B") == []
        again = await store.ingest("T-A", good["T-A"], [None, None])
        assert [r.status for r in again.results] == ["duplicate", "duplicate"]
        assert await store.reports.check() == []
    finally:
        await store.close()


async def test_two_batches_of_one_terminal_in_one_group_follow_each_other(
    tmp_path: Path, ledger_database: str | None
) -> None:
    store = await books(tmp_path, ledger_database)
    try:
        chain = sealed([draft("T-D", 100 * (i + 1), "M0001") for i in range(4)])
        first, second = await asyncio.gather(
            store.ingest("T-D", chain[:2], [None, None]), store.ingest("T-D", chain[2:], [None, None])
        )
        assert [r.status for r in (*first.results, *second.results)] == ["accepted"] * 4
        assert second.high_seq == 4
        assert second.gaps == ()
        assert [r["seq"] for r in await store.reports.terminal_records("T-D")] == [1, 2, 3, 4]
    finally:
        await store.close()


async def test_groups_in_flight_on_one_node_never_share_a_key_and_a_terminal_keeps_its_order(
    tmp_path: Path, ledger_database: str | None
) -> None:
    """The lanes' grouping alone: a batch naming a key a running group holds waits, with every later batch
    naming one of its keys; the rest go now."""
    store = await books(tmp_path, ledger_database)
    try:
        writer = GroupWriter(store.db, lambda: store.rules.shelf)
        loop = asyncio.get_running_loop()

        def waiting(terminal: str, member: str) -> _Waiting:
            (record,) = sealed([dataclasses.replace(draft(terminal, 100), member_id=member)])
            done: asyncio.Future[list[str | None]] = loop.create_future()
            done.set_result([None])
            return _Waiting(terminal, [record], done, loop.create_future(), frozenset(lock_keys([record])))

        first, second, third, fourth = (
            waiting("T-1", "M0001"),  # shares M0001 with the group in flight: waits
            waiting("T-1", "M0002"),  # T-1 again: after its first batch, so it waits too
            waiting("T-2", "M0003"),  # nothing in common: goes now
            waiting("T-3", "M0002"),  # shares M0002 with a batch left waiting: waits, in order behind it
        )
        writer._waiting = [first, second, third, fourth]
        writer._busy = {"member:M0001", "terminal:T-9"}
        assert writer._next_group() == [third]
        assert writer._waiting == [first, second, fourth]
        writer._busy = set()  # the running group committed
        assert writer._next_group() == [first, second, fourth]
    finally:
        await store.close()


async def test_a_long_group_gives_the_loop_back_as_it_goes_and_is_applied_whole(
    tmp_path: Path, ledger_database: str | None
) -> None:
    """On PostgreSQL the API's requests share the loop a group runs on: the group pauses for them every
    ``YIELD_EVERY`` records it decides. On SQLite it is stepped on a thread of its own and must never
    suspend (a pause there is nothing). Either way every record is applied once."""
    store = await books(tmp_path, ledger_database)
    try:
        records = sealed([draft("T-LONG", 100 + i, "M0001") for i in range(2 * YIELD_EVERY + 50)])
        half = len(records) // 2
        reply = await store.ingest("T-LONG", records[:half], [None] * half)  # through the group writer
        assert [r.status for r in reply.results] == ["accepted"] * half
        pauses = 0

        class Counted:
            def __init__(self, tx: Tx) -> None:
                self._tx = tx

            def __getattr__(self, name: str) -> Any:
                return getattr(self._tx, name)

            async def pause(self) -> None:
                nonlocal pauses
                pauses += 1
                await self._tx.pause()

        rest = records[half:]
        group = [("T-LONG", rest[:YIELD_EVERY]), ("T-LONG", rest[YIELD_EVERY:])]  # two batches, one group
        now = datetime.now(UTC)
        replies = await store.db.write(
            lambda tx: batches(Counted(tx), [(t, rs, [None] * len(rs)) for t, rs in group], now, store.rules.shelf),
            keys=lock_keys(rest),
        )
        assert [r.status for reply in replies for r in reply.results] == ["accepted"] * len(rest)
        assert pauses == len(rest) // YIELD_EVERY  # counted across its batches
        assert replies[-1].high_seq == len(records)
        assert await store.reports.check() == []
    finally:
        await store.close()
