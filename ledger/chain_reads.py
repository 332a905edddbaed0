"""What the ledger reads of a terminal's chain around a group of batches: the records near theirs, and how far
each chain is contiguous (``high_seq``) with the runs still missing above it. Both engines' SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger import chain_check
from ledger.database import Tx, marks
from protocols.records import TransactionRecord

Chain = tuple[str, int]  # (terminal, epoch)
Links = dict[Chain, dict[int, tuple[str, str]]]  # chain -> seq -> (prev_hash, hash) held near the records


async def near(tx: Tx, records: Sequence[TransactionRecord]) -> tuple[set[str], Links]:
    """In one read: the records' ``txn_id`` already held (a batch sent again), and each chain's stored
    records from just below the group's lowest ``seq`` to just above its highest (the links to check)."""
    ids = [r.txn_id for r in records]
    seqs: dict[Chain, list[int]] = {}
    for r in records:
        seqs.setdefault((r.terminal_id, r.epoch), []).append(r.seq)
    spans = {c: (min(s) - 1, max(s) + 1) for c, s in seqs.items()}
    where, args = ranges([(t, e, low, high) for (t, e), (low, high) in spans.items()], len(ids))
    wanted = set(ids)
    held: set[str] = set()
    links: Links = {c: {} for c in seqs}
    for txn_id, t, epoch, seq, prev_hash, digest in await tx.all(
        "SELECT txn_id, terminal_id, epoch, seq, prev_hash, hash FROM transactions "  # noqa: S608
        f"WHERE txn_id IN ({marks(len(ids))}) OR {where}",
        *ids,
        *args,
    ):
        if txn_id in wanted:
            held.add(str(txn_id))
        chain = (str(t), int(epoch))
        if chain in spans and spans[chain][0] <= seq <= spans[chain][1]:
            links[chain][int(seq)] = (prev_hash, digest)
    return held, links


async def advance(tx: Tx, chains: list[Chain]) -> dict[Chain, tuple[int, tuple[tuple[int, int], ...]]]:
    """Each chain's new contiguous high ``seq`` (stored) and the runs still missing above it.

    One read: each chain's stored high (``seq`` null), then every ``seq`` held above it (found by the index
    from that high: a long chain is not walked). A chain with no row yet (records that came before its
    terminal's row) counts from 0, as the records show it."""
    chain = "terminal_id = ${} AND epoch = ${}"
    highs = " OR ".join(f"({chain.format(2 * i + 1, 2 * i + 2)})" for i in range(len(chains)))
    above_high = " OR ".join(
        f"({chain.format(2 * i + 1, 2 * i + 2)} AND seq > (SELECT high_seq FROM terminal_chains "  # noqa: S608
        f"WHERE {chain.format(2 * i + 1, 2 * i + 2)}))"
        for i in range(len(chains))
    )
    before: dict[Chain, int] = dict.fromkeys(chains, 0)
    above: dict[Chain, list[int]] = {c: [] for c in chains}
    stored: set[Chain] = set()
    for t, epoch, high, seq in await tx.all(
        f"SELECT terminal_id, epoch, high_seq, NULL FROM terminal_chains WHERE {highs} UNION ALL "  # noqa: S608
        f"SELECT terminal_id, epoch, NULL, seq FROM transactions WHERE {above_high} ORDER BY 4",
        *(v for c in chains for v in c),
    ):
        if seq is None:
            stored.add((str(t), int(epoch)))
            before[(str(t), int(epoch))] = int(high)
        else:
            above[(str(t), int(epoch))].append(int(seq))
    if rowless := [c for c in chains if c not in stored]:
        where, where_args = ranges([(t, e, 1, None) for t, e in rowless])
        for t, epoch, seq in await tx.all(
            f"SELECT terminal_id, epoch, seq FROM transactions WHERE {where} ORDER BY seq",  # noqa: S608
            *where_args,
        ):
            above[(str(t), int(epoch))].append(int(seq))
    progress = {c: chain_check.advance(before[c], above[c]) for c in chains}
    await tx.many(
        "UPDATE terminal_chains SET high_seq = $1 WHERE terminal_id = $2 AND epoch = $3",
        [(high, t, e) for (t, e), (high, _) in progress.items() if high != before[(t, e)]],
    )
    return {c: (high, tuple(missing)) for c, (high, missing) in progress.items()}


def ranges(spans: list[tuple[str, int, int, int | None]], first: int = 0) -> tuple[str, list[Any]]:
    """``(terminal_id = $a AND epoch = $b AND seq BETWEEN $c AND $d) OR …`` (no upper bound: ``seq >= $c``),
    its parameters numbered after ``first``."""
    parts: list[str] = []
    args: list[Any] = []
    for terminal_id, epoch, low, high in spans:
        n = first + len(args)
        chain = f"terminal_id = ${n + 1} AND epoch = ${n + 2}"
        if high is None:
            parts.append(f"({chain} AND seq >= ${n + 3})")
            args += [terminal_id, epoch, low]
        else:
            parts.append(f"({chain} AND seq BETWEEN ${n + 3} AND ${n + 4})")
            args += [terminal_id, epoch, low, high]
    return " OR ".join(parts), args
