"""``posgw-ledger`` commands for the trust work of operators: terminals, quarantine, identifiers, audit.

Each changes the books only through its module (``terminals.py``,
``quarantine.py``, ``identity.py``), in one transaction, with an entry in
the audit trail naming who (``--by``, default the login name) and why.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ledger import identity, quarantine, record_audit, secrets, terminals
from ledger.chain_check import seal_refusals
from ledger.store import LedgerStore
from protocols.errors import FinalError
from protocols.records import ID_PATTERN
from protocols.sync import MAX_BATCH, batch_from_wire, seal_items
from protocols.tokens import b64url_decode
from protocols.untrusted_json import UntrustedJsonError, read_json

COMMANDS = ("terminal", "quarantine", "audit", "secrets")


def add_commands(sub: Any) -> list[argparse.ArgumentParser]:
    """The subcommands; returned so the caller adds the options every command shares (``--data`` …)."""
    by = {"default": None, "help": "who does it (kept in the audit trail; default: $USER)"}
    term = sub.add_parser("terminal", help="enrol, list, retire and replace terminals (one-time enrolment codes)")
    term.add_argument("action", choices=["add", "list", "show", "retire", "replace", "shop", "counters", "import"])
    term.add_argument("terminal_id", nargs="?")
    term.add_argument("--store", help="add, replace, shop: the shop the till is for")
    term.add_argument("--merchant", help="add, replace, shop: the merchant (its tier rates)")
    term.add_argument(
        "--counters", help="counters: a central checkout's counters (merchants its lines may name), comma-separated"
    )
    term.add_argument("--expires", type=float, default=24.0, metavar="HOURS", help="how long the code is good (24)")
    term.add_argument("--count", type=int, help="add: this many terminals, named TERMINAL_ID-0000 … (a line each)")
    term.add_argument("--journal", type=Path, help="import: a replaced till's `posgw journal export` (JSON lines)")
    term.add_argument("--epoch", type=int, default=1, help="import: the chain epoch that journal is of (1)")
    term.add_argument("--by", **by)
    term.add_argument("--json", action="store_true")
    quar = sub.add_parser("quarantine", help="records the ledger could not believe: list, show, release, reject")
    quar.add_argument("action", choices=["list", "show", "release", "reject"])
    quar.add_argument("txn_id", nargs="?")
    quar.add_argument("--state", default="held", choices=["held", "released", "rejected"])
    quar.add_argument("--note", help="release, reject: why (kept in the audit trail)")
    quar.add_argument("--by", **by)
    quar.add_argument("--json", action="store_true")
    trail = sub.add_parser(
        "audit", help="trail: who enrolled, replaced, released, moved, merged what; records: check every record's seal"
    )
    trail.add_argument("action", nargs="?", default="trail", choices=["trail", "records"])
    trail.add_argument("--last", type=int, default=50, help="trail: this many entries (50)")
    trail.add_argument("--from-start", action="store_true", help="records: every record again, not only the new")
    keys = sub.add_parser("secrets", help="the key that seals the ledger's secrets; the issuer key for card bureaus")
    keys.add_argument("action", choices=["new-key", "issuer-pem"])
    return [term, quar, trail, keys]


def _actor(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", None) or os.environ.get("USER") or "operator")


async def run(store: LedgerStore, args: argparse.Namespace) -> int:
    try:
        if args.command == "terminal":
            return await terminal_command(store, args)
        if args.command == "quarantine":
            return await quarantine_command(store, args)
        if args.command == "secrets":
            return await secrets_command(store, args)
        if args.action == "records":
            return await records_audit(store, from_start=args.from_start)
        rows = await store.db.read(
            lambda tx: tx.all(
                "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT $1", args.last
            )
        )
        for at, actor, action, subject, detail in reversed(rows):
            print(f"  {at}  {actor:<12} {action:<20} {subject}  {detail}")
        return 0
    except FinalError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65  # EX_DATAERR


async def records_audit(store: LedgerStore, *, from_start: bool = False) -> int:
    """Every stored record's own seal, from where the last audit stopped (or the first record); 1 when any
    failed (each quarantined)."""
    if from_start:
        await store.db.write(record_audit.start_over)
    run = await record_audit.audit_pass(store.db)
    for f in run.findings:
        print(f"  {f.terminal_id} epoch {f.epoch} seq {f.seq} {f.txn_id}: {f.reason} (quarantined)")
    print(f"{run.checked} records audited, {len(run.findings)} failed", file=sys.stderr)
    return 1 if run.findings else 0


async def terminal_command(store: LedgerStore, args: argparse.Namespace) -> int:
    action, terminal_id = args.action, args.terminal_id
    if action == "list":
        listed = await store.db.read(terminals.listing)
        if args.json:
            print(json.dumps([t.to_wire() for t in listed], indent=2))
        for t in [] if args.json else listed:
            chain = t.chains[-1] if t.chains else None
            high = f"seq {chain.high_seq}" if chain else "no chain yet"
            print(
                f"  {t.terminal_id:<16} {t.status:<8} {t.store_id or '-':<12} {t.merchant_id or '-':<14} "
                f"epoch {t.epoch} {high}"
            )
        return 0
    if terminal_id is None or not _is_id(terminal_id):
        print(f"posgw-ledger: terminal {action} needs a terminal id ({ID_PATTERN})", file=sys.stderr)
        return 2
    actor, ttl = _actor(args), args.expires * 3600
    if action == "show":
        held = await store.db.read(lambda tx: terminals.get(tx, terminal_id))
        if held is None:
            print(f"posgw-ledger: no terminal {terminal_id}", file=sys.stderr)
            return 1
        print(json.dumps(held.to_wire(), indent=2))
        return 0
    if action == "add":
        if not (args.store and args.merchant):
            print("posgw-ledger: terminal add needs --store and --merchant", file=sys.stderr)
            return 2
        if args.count:
            codes = await store.db.write(
                lambda tx: terminals.add_many(tx, terminal_id, args.count, args.store, args.merchant, actor, ttl)
            )
            print("\n".join(f"{t} {c}" for t, c in codes.items()))
            print(f"{len(codes)} terminals added; their codes are good for {args.expires:g} h, once", file=sys.stderr)
            return 0
        code = await store.db.write(lambda tx: terminals.add(tx, terminal_id, args.store, args.merchant, actor, ttl))
        return _code(terminal_id, code, args.expires)
    if action == "replace":
        code = await store.db.write(
            lambda tx: terminals.replace(tx, terminal_id, actor, ttl, args.store, args.merchant)
        )
        print(f"{terminal_id}: its chain is closed (its records keep verifying); the new till starts the next epoch")
        return _code(terminal_id, code, args.expires)
    if action == "import":
        return await import_journal(store, terminal_id, args.epoch, args.journal)
    if action == "counters":
        counters = sorted({c.strip() for c in (args.counters or "").split(",") if c.strip()})
        await store.db.write(lambda tx: terminals.set_counters(tx, terminal_id, counters, actor))
        print(
            f"{terminal_id}: a central checkout for {', '.join(counters)}"
            if counters
            else f"{terminal_id}: no counters"
        )
        return 0
    if action == "retire":
        await store.db.write(lambda tx: terminals.retire(tx, terminal_id, actor))
        print(f"{terminal_id} retired: its key is refused from now on; its records stay")
        return 0
    if not (args.store and args.merchant):
        print("posgw-ledger: terminal shop needs --store and --merchant", file=sys.stderr)
        return 2
    await store.db.write(lambda tx: terminals.set_shop(tx, terminal_id, args.store, args.merchant, actor))
    print(f"{terminal_id}: store {args.store}, merchant {args.merchant}")
    return 0


async def import_journal(store: LedgerStore, terminal_id: str, epoch: int, path: Path | None) -> int:
    """A replaced (broken) till's records, recovered from its journal export: each checked against the key of
    the chain epoch it was sealed in, and re-checked like any batch (``docs/operator-guide.md``)."""
    if path is None:
        print("posgw-ledger: terminal import needs --journal EXPORT.jsonl", file=sys.stderr)
        return 2
    key = await store.terminals.chain_key(terminal_id, epoch)
    if key is None:
        print(f"posgw-ledger: {terminal_id} has no chain epoch {epoch}", file=sys.stderr)
        return 1
    with path.open(encoding="utf-8") as fh:
        wires = [{k: v for k, v in _record_line(line, path).items() if k != "sync"} for line in fh if line.strip()]
    counts: dict[str, int] = {}
    for start in range(0, len(wires), MAX_BATCH):
        batch = {"terminal_id": terminal_id, "records": wires[start : start + MAX_BATCH]}
        _, items = seal_items(batch)
        _, records = batch_from_wire(batch)
        if any(r.epoch != epoch for r in records):
            print(f"posgw-ledger: {path} holds records of another epoch than {epoch}", file=sys.stderr)
            return 65
        assert items is not None
        reply = await store.ingest(terminal_id, records, seal_refusals(b64url_decode(key), items))
        for r in reply.results:
            counts[r.status] = counts.get(r.status, 0) + 1
            if r.status in ("rejected", "quarantined"):
                print(f"  seq {r.seq}: {r.status}: {r.reason}")
        print(f"  {min(start + MAX_BATCH, len(wires)):,} / {len(wires):,} records", file=sys.stderr)
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to import")
    return 0


def _code(terminal_id: str, code: str, hours: float) -> int:
    print(f"enrolment code for {terminal_id} (good for {hours:g} h, once): {code}", file=sys.stderr)
    print(code)
    return 0


def _is_id(text: str) -> bool:
    return re.fullmatch(ID_PATTERN, text) is not None


async def quarantine_command(store: LedgerStore, args: argparse.Namespace) -> int:
    if args.action == "list":
        held = await store.quarantine.held(args.state)
        if args.json:
            print(json.dumps(held, indent=2))
            return 0
        for q in held:
            print(
                f"  {q['held_at']}  {q['terminal_id']:<14} epoch {q['epoch']} seq {q['seq']:<6} {q['txn_id']}  "
                f"{q['reason']}"
            )
        print(f"{len(held)} records {args.state}")
        return 0
    if args.txn_id is None:
        print(f"posgw-ledger: quarantine {args.action} needs a txn_id", file=sys.stderr)
        return 2
    txn_id = args.txn_id
    if args.action == "show":
        print(json.dumps(await store.db.read(lambda tx: quarantine.show(tx, txn_id)), indent=2))
        return 0
    if not args.note:
        print(f"posgw-ledger: quarantine {args.action} needs --note (why, for the audit trail)", file=sys.stderr)
        return 2
    if args.action == "release":
        conflicts = await store.db.write(
            lambda tx: quarantine.release(tx, txn_id, _actor(args), args.note, store.rules.shelf)
        )
        print(f"{txn_id} released and applied" + (f"; conflicts: {'; '.join(conflicts)}" if conflicts else ""))
        return 0
    await store.db.write(lambda tx: quarantine.reject(tx, txn_id, _actor(args), args.note))
    print(f"{txn_id} rejected: kept, never applied")
    return 0


async def member_command(store: LedgerStore, args: argparse.Namespace) -> int:
    """``member move-identifier IDENT --to M`` and ``member merge FROM --to M``, each with ``--reason``."""
    if not args.to or not args.reason:
        print(f"posgw-ledger: member {args.action} needs --to MEMBER and --reason", file=sys.stderr)
        return 2
    actor = args.by or _actor(args)
    try:
        if args.action == "move-identifier":
            ident = args.member_id
            before = await store.db.write(lambda tx: identity.move(tx, ident, args.to, actor, args.reason))
            print(f"{ident} moved from {before} to {args.to}")
            return 0
        moved = await store.db.write(lambda tx: identity.merge(tx, args.member_id, args.to, actor, args.reason))
    except FinalError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65
    print(
        f"{args.member_id} merged into {args.to}: {moved['points']:,} points, {moved['wallet']:,} fen, "
        f"{moved['growth']:,} growth, {moved['identifiers']} identifiers; {args.member_id} is frozen"
    )
    return 0


async def secrets_command(store: LedgerStore, args: argparse.Namespace) -> int:
    if args.action == "new-key":
        print(secrets.new_secrets_key())
        return 0
    key = await secrets.issuer_key(store.db, args.data, secrets.secrets_key(args.data, args.secrets_key_file))
    sys.stdout.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode())
    return 0


def _record_line(line: str, path: Path) -> dict[str, Any]:
    """One record of a journal export, through the reader of untrusted JSON."""
    value = read_json(line, f"{path} line", max_bytes=1024 * 1024)
    if not isinstance(value, dict):
        raise UntrustedJsonError(f"{path}: a line is not a record (a JSON object)")
    return value
