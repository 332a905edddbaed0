"""The batch-sync exchange between a terminal and the ledger.

The terminal posts its pending records in ``seq`` order; the ledger answers
per record (``accepted``, ``duplicate`` or ``rejected`` with a reason) and the
highest contiguous ``seq`` it holds for the terminal, with the runs it misses
above that (``gaps``). Dedup on the ledger is permanent, so a batch can be
re-sent any number of times: a till sends again every record in a gap that it
had taken as delivered, and compares its journal with the ledger's
:class:`ChainView` whenever it says hello.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocols.chain import CHAIN_FIELDS, canonical
from protocols.records import ID_PATTERN, TransactionRecord, read_record
from protocols.schema import Fields, Problems

MAX_BATCH = 200
STATUSES = ("accepted", "duplicate", "rejected", "quarantined")


Gaps = tuple[tuple[int, int], ...]  # runs of missing seq, (first, last)


def gaps_to_wire(gaps: Gaps) -> list[dict[str, int]]:
    return [{"from": first, "to": last} for first, last in gaps]


def gaps_from_wire(f: Fields) -> Gaps:
    return tuple((g.integer("from", minimum=1), g.integer("to", minimum=1)) for g in f.tables("gaps", max_items=100))


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
    # Runs of seq the ledger is missing below the highest it holds (first from, last to), for operators.
    gaps: Gaps = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "results": [
                {"txn_id": r.txn_id, "seq": r.seq, "status": r.status, "reason": r.reason} for r in self.results
            ],
            "high_seq": self.high_seq,
            "gaps": gaps_to_wire(self.gaps),
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
        gaps = gaps_from_wire(f)
        problems.raise_if_any()
        return cls(tuple(results), high_seq, gaps)


@dataclass(frozen=True, slots=True)
class ChainView:
    """A terminal's chain as the ledger holds it: contiguous to ``high_seq``, then ``gaps`` up to ``held_to``."""

    high_seq: int
    held_to: int
    gaps: Gaps = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "high_seq": self.high_seq,
            "held_to": self.held_to,
            "gaps": gaps_to_wire(self.gaps),
        }

    @classmethod
    def from_wire(cls, data: object) -> ChainView:
        problems = Problems("ledger chain view")
        f = Fields(data, problems)
        high = f.integer("high_seq", minimum=0)
        held_to = f.integer("held_to", minimum=0)
        gaps = gaps_from_wire(f)
        problems.raise_if_any()
        return cls(high, held_to, gaps)

    def lacks(self, seq: int) -> bool:
        """The ledger does not hold this ``seq`` of the chain."""
        return seq > self.held_to or (seq > self.high_seq and any(a <= seq <= b for a, b in self.gaps))


def batch_to_wire(terminal_id: str, records: list[TransactionRecord]) -> dict[str, Any]:
    return {"terminal_id": terminal_id, "records": [r.to_wire() for r in records]}


def seal_items(data: object) -> tuple[str | None, list[tuple[str, str, str, bytes]] | None]:
    """From a batch as received, before the schema reads it: the terminal it claims, and per record
    ``(prev_hash, hash, signature, body)`` with the bytes its hash covers (its JSON as sent, without
    the chain fields; taken from the JSON itself, so a field this version would fill with a default
    never changes what is checked). ``None`` for what is not even shaped like a batch; the schema
    then says what is wrong.
    """
    if not isinstance(data, dict):
        return None, None
    claimed = data.get("terminal_id")
    terminal_id = claimed if isinstance(claimed, str) and re.fullmatch(ID_PATTERN, claimed) else None
    records = data.get("records")
    if not isinstance(records, list) or len(records) > MAX_BATCH:
        return terminal_id, None
    items: list[tuple[str, str, str, bytes]] = []
    for record in records:
        if not isinstance(record, dict):
            return terminal_id, None
        prev, digest, signature = (_text(record.get(name)) for name in CHAIN_FIELDS)
        items.append((prev, digest, signature, canonical(record)))
    return terminal_id, items


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""  # absent: "unsigned"; another type: the schema refuses it


def batch_from_wire(data: object) -> tuple[str, list[TransactionRecord]]:
    """Parse a batch; every problem in every record is reported together."""
    problems = Problems("sync batch")
    f = Fields(data, problems)
    terminal_id = f.text("terminal_id", pattern=ID_PATTERN)
    # Required, as seal_items requires it: the two readers of a batch never disagree on what it holds.
    records = [read_record(rf) for rf in f.tables("records", max_items=MAX_BATCH, required=True)]
    f.done()
    for r in records:
        if r.terminal_id != terminal_id:
            problems.add(f"records[seq={r.seq}]", "terminal_id differs from the batch's")
    problems.raise_if_any()
    return terminal_id, records
