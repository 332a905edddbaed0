"""Several ``posgw-ledger serve`` nodes on one PostgreSQL: a fleet over all, a node killed, news once.

Three nodes with one secrets key and one broker; a fleet of terminals shared out over them sells and
syncs while one node is killed with SIGKILL and started again. Nothing is lost or doubled, the books hold
and reconcile to the fen; the member revisions reach the broker from one node only, each once and in
order, however many nodes run; and the background jobs started on every node at once do their work once.
"""

from __future__ import annotations

import asyncio
import json
import secrets as token
import signal
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from ledger import secrets
from ledger.reports import totals_by_terminal
from protocols.business_day import business_day
from protocols.mqtt_topics import members_topic
from simulators.fleet import run_fleet
from tests.harness import LedgerHandle, fleet_differences, ledger_cli
from tests.pg import fresh_schema

pytestmark = [pytest.mark.ledger, pytest.mark.postgres]
BROKER = ("127.0.0.1", 1883)


async def _listen(mall: str, heard: list[int], ready: asyncio.Event) -> None:
    async with aiomqtt.Client(*BROKER, identifier=f"listener-{mall}") as client:
        await client.subscribe(members_topic(mall), qos=1)
        ready.set()
        async for m in client.messages:  # heard as they come: the test reads them meanwhile
            if not m.retain:  # the retained one is from before the listener: not an announcement it saw
                heard.append(int(json.loads(bytes(m.payload))["version"]))  # noqa: PERF401


async def test_three_nodes_one_killed_mid_fleet_lose_nothing_double_nothing_and_announce_once(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    shared = {secrets.KEY_ENV: secrets.new_secrets_key()}
    mall = f"nodes-{token.token_hex(4)}"
    mqtt = ("--mqtt", f"{BROKER[0]}:{BROKER[1]}", "--mall", mall, "--member-notices-every", "0.2")
    heard: list[int] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_listen(mall, heard, ready))
    async with fresh_schema() as url:
        nodes = [
            LedgerHandle(tmp_path / f"node{i}", tokens, (*mqtt, "--node", f"n{i}"), database=url, env=shared)
            for i in range(3)
        ]
        try:
            await nodes[0].start()  # the first seeds the demo mall; the others join it
            await asyncio.gather(*(n.start() for n in nodes[1:]))
            await asyncio.wait_for(ready.wait(), 10)
            enrolled = asyncio.Event()
            codes = await nodes[0].fleet_codes(30)
            fleet_run = asyncio.create_task(
                run_fleet([n.url for n in nodes], codes, 30, pace_seconds=0.02, enrolled=enrolled)
            )
            waiting = asyncio.create_task(enrolled.wait())
            await asyncio.wait({fleet_run, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            assert enrolled.is_set(), fleet_run.result()
            await asyncio.sleep(0.4)
            nodes[1].proc.stop(signal.SIGKILL)  # mid-fleet: its batches in flight are cut off
            await asyncio.sleep(0.5)
            await nodes[1].start()
            result, fleet = await fleet_run
            assert result.failed_posts > 0  # the kill really cut batches off
            # A batch committed as its node died was unanswered: sent again, it is a duplicate, not a second sale.
            assert (result.accepted + result.duplicates, result.rejected, result.quarantined) == (900, 0, 0)
            made = [r for t in fleet for r in t.made]
            assert await fleet_differences(nodes[2], made) == []  # every record once, seen from any node
            assert await nodes[0].books_problems() == []
            today = business_day(datetime.now(UTC)).isoformat()
            by_terminal = totals_by_terminal((r.to_wire() for r in made), today)
            assert sum(t.sales_due for t in by_terminal.values()) == sum(r.total_due for r in made)
            await asyncio.sleep(1.5)  # the last revision is announced within a round
        finally:
            for node in nodes:
                node.stop()
            listener.cancel()
    assert len(heard) >= 3, heard  # news went out while the fleet sold …
    assert heard == sorted(set(heard)), heard  # … from one node: each revision once, never an older after a newer


async def test_jobs_started_on_every_node_at_once_do_their_work_once(tmp_path: Path, tokens: dict[str, str]) -> None:
    """The year-end and daily jobs, run by each node's timer at the same minute: the books as if run once."""
    shared = {secrets.KEY_ENV: secrets.new_secrets_key()}
    async with fresh_schema() as url:
        node = LedgerHandle(tmp_path / "node0", tokens, ("--audit-every", "0"), database=url, env=shared)
        await node.start()
        try:
            await run_fleet(node.url, await node.fleet_codes(6), 10, offline_share=0.0)
        finally:
            node.stop()
        jobs = [
            ["points", "expire", "--before", "2099-01-01"],
            ["wallet", "expire"],
            ["tiers", "review"],
            ["audit", "records"],
        ]
        for job in jobs:
            argv = [*job, "--database", url]
            runs = await asyncio.gather(
                *(
                    asyncio.to_thread(ledger_cli, *argv, "--data", str(tmp_path / f"node{i}"), env=shared)
                    for i in range(3)
                )
            )
            assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        books = await node.open_store()
        try:
            expired = await books.db.read(
                lambda tx: tx.one("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM postings WHERE kind = 'expire'")
            )
            points = await books.db.read(lambda tx: tx.one("SELECT COALESCE(SUM(points), 0) FROM members"))
            reviews = await books.db.read(lambda tx: tx.one("SELECT COUNT(*) FROM tier_reviews"))
        finally:
            await books.close()
        assert expired is not None
        assert points is not None
        assert reviews is not None
        assert int(points[0]) == 0  # everything earned before 2099 expired …
        assert int(reviews[0]) == 1  # … the review ran once
        assert await node.books_problems() == []  # … and the books hold: nothing expired twice
