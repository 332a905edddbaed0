"""The batch-sync exchange between a terminal and the ledger.

The terminal posts its pending records in ``seq`` order; the ledger answers
per record (``accepted``, ``duplicate`` or ``rejected`` with a reason) and the
highest contiguous ``seq`` it holds for the terminal. Dedup on the ledger is
permanent, so a batch can be re-sent any number of times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocols.records import ID_PATTERN, TransactionRecord, read_record
from protocols.schema import Fields, Problems

MAX_BATCH = 200
STATUSES = ("accepted", "duplicate", "rejected")


@dataclass(frozen=True, slots=True)
class SyncResult:
    txn_id: str
    seq: int
    status: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SyncReply:
    results: tuple[SyncResult, ...]
    high_seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "results": [
                {"txn_id": r.txn_id, "seq": r.seq, "status": r.status, "reason": r.reason} for r in self.results
            ],
            "high_seq": self.high_seq,
        }

    @classmethod
    def from_wire(cls, data: object) -> SyncReply:
        problems = Problems("ledger sync reply")
        f = Fields(data, problems)
        results = [
            SyncResult(
                rf.text("txn_id"), rf.integer("seq"), rf.text("status", choices=STATUSES), rf.optional_text("reason")
            )
            for rf in f.tables("results", max_items=MAX_BATCH)
        ]
        high_seq = f.integer("high_seq", minimum=0)
        problems.raise_if_any()
        return cls(tuple(results), high_seq)


def batch_to_wire(terminal_id: str, records: list[TransactionRecord]) -> dict[str, Any]:
    return {"terminal_id": terminal_id, "records": [r.to_wire() for r in records]}


def batch_from_wire(data: object) -> tuple[str, list[TransactionRecord]]:
    """Parse a batch; every problem in every record is reported together."""
    problems = Problems("sync batch")
    f = Fields(data, problems)
    terminal_id = f.text("terminal_id", pattern=ID_PATTERN)
    records = [read_record(rf) for rf in f.tables("records", max_items=MAX_BATCH)]
    f.done()
    for r in records:
        if r.terminal_id != terminal_id:
            problems.add(f"records[seq={r.seq}]", "terminal_id differs from the batch's")
    problems.raise_if_any()
    return terminal_id, records
