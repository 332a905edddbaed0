"""A terminal's batch of records at the ledger: read, its seals checked, applied, answered, alerted.

An ordinary batch is read in C (``protocols/fast_records.py``), any other by the
reference readers; its seals are checked while the books are written
(``ledger/chain_check.py``: every hash link, one signature vouching for a run;
``POSGW_LEDGER_SEAL_CHECK=every``: each record's own, in worker processes); the
group writer applies it (``ledger/group_writer.py``, ``ledger/ingest.py``). What
the ledger cannot believe, and what an accepted record leaves for the mall to
settle, is logged and alerted on MQTT.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from concurrent.futures import BrokenExecutor

import structlog
from aiohttp import web

from ledger.chain_check import seal_refusals, vouched_refusals
from ledger.http import SERVICE, body_of, me, own
from ledger.service import LedgerService
from protocols import fast_records
from protocols.chain import with_chain
from protocols.errors import SchemaError
from protocols.fast_records import SealItem
from protocols.records import TransactionRecord
from protocols.sync import SyncReply, batch_from_wire, seal_items

log = structlog.get_logger("posgw.ledger")

VERIFY_WORKERS = int(os.environ.get("POSGW_LEDGER_VERIFY_WORKERS", 0)) or os.cpu_count() or 2
# "chain" (the default): every hash link, one signature vouching for a run; "every": each record's signature.
SEAL_CHECK = os.environ.get("POSGW_LEDGER_SEAL_CHECK", "chain")


async def sync_batch(request: web.Request) -> web.Response:
    """A terminal's records, sealed with the key of its chain epoch: each accepted, a duplicate, rejected
    (chain or seal), or quarantined (the ledger cannot believe it: ``ledger/recheck.py``)."""
    svc = request.app[SERVICE]
    data = await body_of(request)
    terminal_id, records, items, seals = _read_batch(request, svc, data)
    started = time.perf_counter()
    kept = [with_chain(body, prev, digest, signature) for prev, digest, signature, body in items]
    # The books are written while workers verify; each record kept as the till signed it.
    reply = await svc.store.ingest(terminal_id, records, seals, kept if len(kept) == len(records) else None)
    svc.metrics.ingested(reply, time.perf_counter() - started)
    accepted = sum(r.status == "accepted" for r in reply.results)
    if accepted and svc.notices is not None:  # balances changed: the duties announce the revision (one read)
        svc.notices.news_due.set()
    _alert_conflicts(svc, terminal_id, reply)
    _alert_quarantine(svc, terminal_id, reply)
    rejected = [f"{r.seq}: {r.reason}" for r in reply.results if r.status == "rejected"]
    log.info("batch_ingested", terminal=terminal_id, records=len(records), accepted=accepted, high_seq=reply.high_seq)
    if rejected or reply.gaps:
        log.warning("batch_problems", terminal=terminal_id, rejected=rejected, gaps=reply.gaps)
    return web.json_response(reply.to_wire())


def _read_batch(
    request: web.Request, svc: LedgerService, data: object
) -> tuple[str, list[TransactionRecord], list[SealItem], asyncio.Future[list[str | None]]]:
    """The batch's terminal, its records, what each seal covers, and the seals' check under way. An ordinary
    batch is read in C (``protocols/fast_records.py``); any other by the reference readers, which name every
    problem of every record."""
    who = me(request)
    if (fast := fast_records.read_batch(data)) is not None:
        terminal_id, records, items = fast
        own(request, terminal_id, "send records")
        _of_epoch(records, who.epoch)
        if not who.key:
            raise SchemaError("sync batch", ["the batch could not be read for its seals"])
        return terminal_id, records, items, _start_seal_checks(svc, who.key, items)
    claimed, read = seal_items(data)
    if claimed is not None:
        own(request, claimed, "send records")
    # The key that signed the request is its epoch's, which seals the records (no second lookup). Signatures
    # are checked in worker processes while this one reads the records through the schema.
    seals = _start_seal_checks(svc, who.key, read) if who.key and read is not None else None
    try:
        terminal_id, records = batch_from_wire(data)
        own(request, terminal_id, "send records")
        _of_epoch(records, who.epoch)
    except BaseException:
        if seals is not None:
            seals.cancel()
        raise
    if seals is None or read is None:  # the schema accepted a batch seal_items could not read: a bug
        raise SchemaError("sync batch", ["the batch could not be read for its seals"])
    return terminal_id, records, read, seals


def _of_epoch(records: list[TransactionRecord], epoch: int) -> None:
    if other := [r.seq for r in records if r.epoch != epoch]:
        raise SchemaError("sync batch", [f"records {other[:5]} are not of chain epoch {epoch}, this key's"])


def _alert_quarantine(svc: LedgerService, terminal_id: str, reply: SyncReply) -> None:
    """A record the ledger cannot believe: an alert now, and it waits for an operator (never applied, never lost)."""
    for r in reply.results:
        if r.status == "quarantined":
            log.error("record_quarantined", terminal=terminal_id, txn_id=r.txn_id, seq=r.seq, reason=r.reason)
            if svc.notices is not None:
                alert = {"kind": "quarantine", "terminal_id": terminal_id, "txn_id": r.txn_id, "detail": r.reason}
                svc.notices.alert(alert)


_NOTED = re.compile(r"(?:^|; )(conflict|held|surge): ")  # what an accepted record's answer may say


def _alert_conflicts(svc: LedgerService, terminal_id: str, reply: SyncReply) -> None:
    """Records accepted with something for the mall to look at — a conflict to settle, earnings held for review
    (``ledger/controls.py``), a surge — in the log and on MQTT, each its own alert, never silent."""
    for r in reply.results:
        if r.status != "accepted" or not r.reason:
            continue
        parts = _NOTED.split(r.reason)[1:]  # kind, detail, kind, detail …
        for kind, text in zip(parts[::2], parts[1::2], strict=True):
            detail = f"{kind}: {text}"
            log.warning(f"{kind}_recorded", terminal=terminal_id, txn_id=r.txn_id, seq=r.seq, detail=detail)
            if svc.notices is not None:
                svc.notices.alert({"kind": kind, "terminal_id": terminal_id, "txn_id": r.txn_id, "detail": detail})


def _start_seal_checks(
    svc: LedgerService, key: bytes, items: list[tuple[str, str, str, bytes]]
) -> asyncio.Future[list[str | None]]:
    """Every record's seal. By default the chain vouches (``chain_check.vouched_refusals``: every hash,
    one signature a run), inline; with ``POSGW_LEDGER_SEAL_CHECK=every``, every record's signature, in
    worker processes for a batch worth it."""
    loop = asyncio.get_running_loop()
    if SEAL_CHECK != "every" or svc.verifier is None or len(items) < 32:
        check = vouched_refusals if SEAL_CHECK != "every" else seal_refusals
        done: asyncio.Future[list[str | None]] = loop.create_future()
        done.set_result(check(key, items))
        return done
    size = -(-len(items) // VERIFY_WORKERS)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    try:
        parts = [loop.run_in_executor(svc.verifier, seal_refusals, key, chunk) for chunk in chunks]
    except BrokenExecutor:  # a worker died: the batches it held failed (terminals resend), new workers now
        if svc.new_verifier is None:
            raise
        log.error("verifier_restarted", reason="a signature-checking worker process died")
        svc.verifier.shutdown(wait=False)
        svc.verifier = svc.new_verifier()
        parts = [loop.run_in_executor(svc.verifier, seal_refusals, key, chunk) for chunk in chunks]

    async def joined() -> list[str | None]:
        return [reason for part in await asyncio.gather(*parts) for reason in part]

    return asyncio.ensure_future(joined())
