"""Every stored record's own seal, checked again in the background (``posgw-ledger audit records``).

At ingest the chain vouches: every hash and link is checked, and one signature
a run (``chain_check.vouched_refusals``). The records keep their own
signatures, and this audit walks each chain in ``seq`` order from where it
last stopped (``terminal_chains.audited_seq``), checking what an auditor
would: the stored body hashes, with the stored ``prev_hash``, to the stored
hash; that ``prev_hash`` is the hash of the record before; and the record's
own signature verifies under its chain epoch's key. A record that fails —
altered in the database after it was applied, say — is put in quarantine
(held for an operator, with the reason) and alerted; its balances are not
moved back (what the till signed is in its journal: the operator compares).

Only the contiguous part of a chain is audited (up to ``high_seq``); records
past a gap wait until it fills. Safe on every node: the cursor only moves
forward and a finding is quarantined once (several nodes auditing at once
check the same records twice, nothing more; ``serve`` audits only on the node
that holds the ``audit`` lease).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nacl.signing import VerifyKey

from ledger.chain_check import seal_refusal
from ledger.database import Database, Tx, Work
from protocols.chain import GENESIS, canonical
from protocols.tokens import b64url_decode

CHUNK = 2_000  # records read, checked and marked at a time


@dataclass(frozen=True)
class Finding:
    txn_id: str
    terminal_id: str
    epoch: int
    seq: int
    reason: str


@dataclass
class AuditRun:
    """What one pass checked and found."""

    checked: int = 0
    findings: list[Finding] = field(default_factory=list)


Row = tuple[str, int, str, str, str]  # txn_id, seq, prev_hash, hash, body


def refusal(key: VerifyKey | None, before: str | None, prev_hash: str, digest: str, body: str) -> str | None:
    """Why a stored record's own seal fails (None: it holds). ``before``: the hash of the record before it.

    The seal is checked as at ingest (``chain_check.seal_refusal``) on the stored record's canonical bytes.
    """
    if before is not None and prev_hash != before:
        return "audit: chain broken: prev_hash is not the hash of the record before"
    try:
        wire = json.loads(body)
    except ValueError:
        wire = None
    if not isinstance(wire, dict):
        return "audit: unreadable: the stored record is not a sealed record"
    if wire.get("hash") != digest or wire.get("prev_hash") != prev_hash:
        return "audit: edited: the stored record and its chain columns disagree"
    if key is None:
        return "audit: no key: the chain epoch has no registered key"
    why = seal_refusal(key, prev_hash, digest, str(wire.get("signature", "")), canonical(wire))
    return None if why is None else f"audit: {why}"


def check(key: VerifyKey | None, before: str | None, rows: list[Row]) -> list[tuple[Row, str]]:
    """The rows of one chain (ascending, contiguous, after the record whose hash is ``before``) that fail."""
    failed: list[tuple[Row, str]] = []
    for row in rows:
        _, _, prev_hash, digest, body = row
        if (reason := refusal(key, before, prev_hash, digest, body)) is not None:
            failed.append((row, reason))
        before = digest
    return failed


async def audit_pass(db: Database, limit: int | None = None, *, share: float = 1.0, chunk: int = CHUNK) -> AuditRun:
    """Audit every chain from where it stopped up to its contiguous head (at most ``limit`` records).

    ``share``: the part of the time it may take (after each chunk it pauses for the rest), so a node
    auditing in the background keeps its CPU for the batches: checking a signature costs as much as
    ingesting a record.
    """
    run = AuditRun()
    chains = await db.read(
        lambda tx: tx.all(
            "SELECT terminal_id, epoch, public_key, audited_seq, high_seq FROM terminal_chains "
            "WHERE audited_seq < high_seq ORDER BY terminal_id, epoch"
        )
    )
    for terminal_id, epoch, public_key, audited, high in chains:
        key = _key(str(public_key))
        done = int(audited)
        while done < int(high) and (limit is None or run.checked < limit):
            started = time.monotonic()
            before, rows = await db.read(_reading(str(terminal_id), int(epoch), done, int(high), chunk))
            failed = await asyncio.to_thread(check, key, before, rows)  # libsodium lets the loop run meanwhile
            findings = [Finding(r[0], str(terminal_id), int(epoch), r[1], why) for r, why in failed]
            done = rows[-1][1] if rows else int(high)
            await db.write(_marking(str(terminal_id), int(epoch), done, findings))
            run.checked += len(rows)
            run.findings += findings
            if share < 1.0:
                await asyncio.sleep((time.monotonic() - started) * (1 / share - 1))
    return run


async def start_over(tx: Tx) -> None:
    """Every chain audited again from its first record (``audit records --from-start``)."""
    await tx.run("UPDATE terminal_chains SET audited_seq = 0")


def _key(public_key: str) -> VerifyKey | None:
    try:
        return VerifyKey(b64url_decode(public_key))
    except (ValueError, TypeError):
        return None


def _reading(terminal_id: str, epoch: int, after: int, high: int, chunk: int) -> Work[tuple[str | None, list[Row]]]:
    async def read(tx: Tx) -> tuple[str | None, list[Row]]:
        before = GENESIS.hex() if after == 0 else None
        if after > 0:
            row = await tx.one(
                "SELECT hash FROM transactions WHERE terminal_id = $1 AND epoch = $2 AND seq = $3",
                terminal_id, epoch, after,
            )  # fmt: skip
            before = None if row is None else str(row[0])
        rows = await tx.all(
            "SELECT txn_id, seq, prev_hash, hash, body FROM transactions "
            "WHERE terminal_id = $1 AND epoch = $2 AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5",
            terminal_id, epoch, after, high, chunk,
        )  # fmt: skip
        return before, [(str(t), int(s), str(p), str(h), str(b)) for t, s, p, h, b in rows]

    return read


def _marking(terminal_id: str, epoch: int, done: int, findings: list[Finding]) -> Work[None]:
    async def mark(tx: Tx) -> None:
        now = datetime.now(UTC).isoformat()
        await tx.many(
            "INSERT INTO quarantine (txn_id, terminal_id, epoch, seq, reason, held_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (txn_id) DO NOTHING",
            [(f.txn_id, f.terminal_id, f.epoch, f.seq, f.reason, now) for f in findings],
        )
        await tx.run(
            "UPDATE terminal_chains SET audited_seq = $1 WHERE terminal_id = $2 AND epoch = $3 AND audited_seq < $1",
            done, terminal_id, epoch,
        )  # fmt: skip

    return mark
