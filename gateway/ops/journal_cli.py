"""``posgw journal …``: verify, status, export, compact, new-key.

These open the journal file directly (read-mostly; SQLite WAL lets them run
beside the daemon) and never create a terminal key: checking signatures
needs the key the terminal already has.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.config import GatewayConfig
from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from offline_queue.personal import Keyring, new_key_line
from offline_queue.verify import verify_file
from protocols.money import format_cny


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    journal = sub.add_parser("journal", help="inspect and maintain the transaction journal")
    actions = journal.add_subparsers(dest="action", required=True)
    for name, text in [
        ("verify", "check the hash chain, signatures and seq numbers; name every bad record"),
        ("status", "pending records and amounts, oldest pending, last sync, limits"),
        ("export", "every record as JSON lines (for auditors)"),
        ("compact", "drop synced records older than the retention, keeping a signed checkpoint"),
    ]:
        p = actions.add_parser(name, help=text)
        p.add_argument("-c", "--config", type=Path, required=True)
        if name == "export":
            p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    actions.add_parser("new-key", help="print a new personal-data key line (put it first in the key file)")


def _open(config: GatewayConfig) -> TransactionJournal:
    keyring = Keyring.from_text(config.journal.keys, config.journal.keys_source) if config.journal.keys else None
    key = load_or_create_signing_key(config.key_path, create=False)
    return TransactionJournal(config.journal_path, key, keyring=keyring)


def _verify(journal: TransactionJournal) -> int:
    # Straight on the file, without the start-up checks: a damaged tail must be named, not refused.
    problems = verify_file(journal.path, journal.signing_key.public_key())
    if problems:
        print(f"journal {journal.path}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"journal {journal.path}: OK, chain, seq numbers and signatures intact")
    return 0


async def _status(journal: TransactionJournal, config: GatewayConfig) -> int:
    await journal.open()
    try:
        s = await journal.stats()
    finally:
        await journal.close()
    amounts = ", ".join(f"{format_cny(v)} {c}" for c, v in s.pending_amount.items()) or "nothing"
    rows = [
        ("records", f"{s.total} (last seq {s.last_seq})"),
        ("pending", f"{s.pending} records, {amounts}"),
        ("oldest pending", s.oldest_pending or "-"),
        ("rejected by ledger", str(s.rejected)),
        ("last synced", s.last_synced_at or "never"),
        ("size", f"{s.file_bytes / 1_048_576:.1f} MiB of {config.journal.max_bytes / 1_048_576:.0f} MiB"),
        ("personal-data keys in use", ", ".join(s.key_ids) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


async def _compact(journal: TransactionJournal, config: GatewayConfig) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=config.journal.retention_days)
    await journal.open()
    try:
        count = await journal.compact(cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        problems = await journal.verify()
    finally:
        await journal.close()
    print(
        f"compacted {count} synced records older than {config.journal.retention_days:g} days; "
        f"chain {'intact' if not problems else 'BROKEN: run posgw journal verify'}"
    )
    return 0 if not problems else 1


def run(args: argparse.Namespace, config: GatewayConfig | None) -> int:
    if args.action == "new-key":
        print(new_key_line())
        return 0
    assert config is not None
    journal = _open(config)
    if args.action == "verify":
        return _verify(journal)
    if args.action == "status":
        return asyncio.run(_status(journal, config))
    if args.action == "compact":
        return asyncio.run(_compact(journal, config))
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    count = 0
    try:
        for line in journal.export_lines():
            out.write(line + "\n")
            count += 1
            if args.output and count % 10_000 == 0:
                print(f"exported {count} records…", file=sys.stderr)
    finally:
        if args.output:
            out.close()
    print(f"exported {count} records", file=sys.stderr)
    return 0
