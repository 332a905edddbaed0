"""What one node of many does for the whole ledger: announce the news, audit the records.

Every ``posgw-ledger serve`` node runs :func:`duties`; a duty is done by the
node that holds its lease (``Database.lease``: a session lock on PostgreSQL,
released when that node stops or loses the database, then taken by another
within a round). So however many nodes run behind the load balancer:

* **news** — the rulebook version, the member revision and the revocation
  list's version are read from the database each round and announced by the
  one node holding ``notices``, each version once and in order (a node that
  does not hold it announces nothing but its own alerts);
* **audit** — every stored record's own signature, checked in the background
  (``record_audit.py``) by the node holding ``audit``, in chunks paced to a
  tenth of its time; a record that fails is quarantined, logged and alerted.

An error in a round is logged and the round comes again: the daemon never ends
because a duty failed.
"""

from __future__ import annotations

import asyncio

import structlog

from ledger import record_audit
from ledger.notices import NoticePublisher
from ledger.store import LedgerStore

log = structlog.get_logger("posgw.ledger.duties")

ROUND_SECONDS = 1.0  # how often the news is read (and a lease a stopped node left is taken)
NEWS_GAP = 0.2  # seconds at least between two reads of the news, however many batches ask
AUDIT_EVERY = 30.0  # seconds between two audit passes on the node that audits
AUDIT_PASS = 20_000  # records one pass checks at most (the rest the next pass)
AUDIT_SHARE = 0.1  # of the node's time the background audit may take (it pauses between chunks for the rest)
AUDIT_CHUNK = 500  # records read and checked at a time in the background (≈ 30 ms of signatures here)


async def duties(
    store: LedgerStore,
    notices: NoticePublisher | None,
    *,
    audit_every: float = AUDIT_EVERY,
    round_seconds: float = ROUND_SECONDS,
) -> None:
    """The news and the audit, each on its own loop (an audit pass, paced, takes seconds: the news goes on)."""
    loops = []
    if notices is not None:
        loops.append(_news(store, notices, round_seconds))
    if audit_every > 0:
        loops.append(_audits(store, notices, audit_every))
    await asyncio.gather(*loops)


async def _news(store: LedgerStore, notices: NoticePublisher, round_seconds: float) -> None:
    """Each round, or sooner when a batch changed members (``notices.news_due``), but never more often than
    every ``NEWS_GAP``: a busy node's batches share one read of the revision."""
    while True:
        try:
            await announce(store, notices)
        except Exception as err:  # noqa: BLE001 - a duty's failure is a warning; the next round tries again
            log.warning("duty_failed", duty="news", error=f"{type(err).__name__}: {err}")
        waiter = asyncio.ensure_future(notices.news_due.wait())
        try:
            await asyncio.wait({waiter}, timeout=round_seconds)
        finally:
            waiter.cancel()
        notices.news_due.clear()
        await asyncio.sleep(NEWS_GAP)


async def _audits(store: LedgerStore, notices: NoticePublisher | None, audit_every: float) -> None:
    await asyncio.sleep(min(audit_every, 5.0))
    while True:
        behind = False
        try:
            run = await audit(store, notices)
            behind = run is not None and run.checked >= AUDIT_PASS  # more is waiting: on at once
        except Exception as err:  # noqa: BLE001 - a duty's failure is a warning; the next pass tries again
            log.warning("duty_failed", duty="audit", error=f"{type(err).__name__}: {err}")
        await asyncio.sleep(0.0 if behind else audit_every)


async def announce(store: LedgerStore, notices: NoticePublisher) -> None:
    """The news as the database has it, if this node announces (each version once: the publisher keeps order)."""
    notices.announcing = await store.db.lease("notices")
    if not notices.announcing:
        return
    rulebook = await store.get_meta("rulebook")
    if rulebook is not None:
        notices.rulebook(int(rulebook["version"]))
    notices.members(await store.members.revision())
    notices.revoked(await store.revocations_version())


async def audit(store: LedgerStore, notices: NoticePublisher | None) -> record_audit.AuditRun | None:
    """One audit pass, if this node audits; each finding logged and alerted."""
    if not await store.db.lease("audit"):
        return None
    run = await record_audit.audit_pass(store.db, AUDIT_PASS, share=AUDIT_SHARE, chunk=AUDIT_CHUNK)
    for f in run.findings:
        log.error("record_audit_failed", terminal=f.terminal_id, epoch=f.epoch, seq=f.seq, txn_id=f.txn_id,
                  reason=f.reason)  # fmt: skip
        if notices is not None:
            notices.alert({"kind": "audit", "terminal_id": f.terminal_id, "txn_id": f.txn_id, "detail": f.reason})
    if run.checked:
        log.info("records_audited", checked=run.checked, failed=len(run.findings))
    return run
